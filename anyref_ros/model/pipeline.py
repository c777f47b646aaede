"""``AnyRefPipeline``: numpy in, ``Referral`` out (the public API).

Like segment-anything's predictor, the image can be encoded once
(``encode_image`` -> ``ImageFeatures``: SAM embedding + CLIP features) and
queried many times: ``segment`` and ``describe`` accept either an image or
such features.

    pipe = AnyRefPipeline.from_pretrained("tiny")          # or a folder
    feats = pipe.encode_image(rgb)                          # once per frame
    r = pipe.segment(feats, text="the red cup")             # forced decoding
    r = pipe.segment(feats, audio=wave, sample_rate=48000)  # greedy decoding
    r = pipe.describe(feats, box=(10, 20, 110, 90))
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from . import processing as P
from .config import AnyRefConfig
from .generation import Trace, forced, greedy
from .modeling import AnyRefModel
from .prompts import (AUDIO_REF, IMAGE, IMAGE_REF, build_prompt, check_user_text, question_key,
                      tokenize_answer, tokenize_prompt)
from .refocus import attention_row, refocus
from .tokenization import TokenIds

DECODINGS = ("auto", "forced", "greedy")


@dataclass
class Referral:
    """Result of one query.

    ``mask``: HxW bool at the image's size (union of ``masks``; all False
    when the answer has no ``[SEG]``); ``text``: the answer without special
    tokens (for exemplar/audio/region queries, the model's description of
    the referent; ``config.prompt.no_object_answer`` when a model trained
    for it finds nothing); ``found``: True when a non-empty mask was
    produced; when False, ``mask`` is all False, ``box`` None and ``score``
    0; ``score``: the mask decoder's predicted IoU clipped to [0, 1] (mean
    over ``masks``; 0 if none or not found);
    ``box``: (x_min, y_min, x_max, y_max) of ``mask`` in pixels, max
    exclusive, None when empty; ``masks``/``scores``: one per ``[SEG]``;
    ``answer``: the raw answer text; ``decoding``: "forced" or "greedy";
    ``timings``: seconds per stage.
    """

    mask: np.ndarray
    text: str
    score: float
    box: Optional[Tuple[int, int, int, int]]
    found: bool = False
    masks: List[np.ndarray] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)
    answer: str = ""
    decoding: str = ""
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class ImageFeatures:
    """An encoded image, reusable by any number of queries.

    ``image``: the RGB array (kept for region crops, not copied);
    ``sam_embedding``: (1, C, s, s); ``sam_input_size``: its resized (h, w);
    ``clip``: (P, llm hidden) projected CLIP patch features.
    """

    image: np.ndarray
    sam_embedding: torch.Tensor
    sam_input_size: Tuple[int, int]
    clip: torch.Tensor
    seconds: float = 0.0

    @property
    def size(self) -> Tuple[int, int]:
        return self.image.shape[:2]


ImageOrFeatures = Union[np.ndarray, ImageFeatures]


class AnyRefPipeline:
    """AnyRef inference on numpy images, exemplars and audio."""

    def __init__(self, model: AnyRefModel, tokenizer, config: AnyRefConfig,
                 sources: Optional[Dict[str, Optional[str]]] = None,
                 folder: Optional[Path] = None, base_rows: Optional[Dict[str, int]] = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.ids = TokenIds(tokenizer, config.tokens)
        # canonical parameter name -> file it came from (None: initialised here)
        self.sources = dict(sources or {})
        # rows of embedding/LM-head matrices that came from an official file
        self.base_rows = dict(base_rows or {})
        self.folder = folder

    # ------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path_or_preset: str | Path, device: Optional[str | torch.device] = None,
                        dtype: Optional[str | torch.dtype] = None) -> "AnyRefPipeline":
        """Load a checkpoint folder (``config.json`` + tokenizer + safetensors)
        or build a preset (``tiny``; ``anyref-7b``/``lisa-7b`` need weight
        paths, see ``WeightsConfig``).  ``device``: "cpu", "cuda", "cuda:N"
        (default: cuda if available); ``dtype``: float32/bfloat16/float16
        (default: the config's).  Nothing is downloaded."""
        from .loading import load_pipeline

        return load_pipeline(cls, path_or_preset, device=device, dtype=dtype)

    @classmethod
    def from_config(cls, config: AnyRefConfig, device: Optional[str | torch.device] = None,
                    dtype: Optional[str | torch.dtype] = None,
                    folder: Optional[str | Path] = None) -> "AnyRefPipeline":
        """Build from a config object (relative weight paths against ``folder``)."""
        from .loading import pipeline_from_config

        return pipeline_from_config(cls, config, Path(folder) if folder is not None else None,
                                    device=device, dtype=dtype)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config, tokenizer and weights to ``folder`` (see ``loading.save_pipeline``)."""
        from .loading import save_pipeline

        save_pipeline(self, folder)

    # ----------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode_image(self, image: np.ndarray) -> ImageFeatures:
        """Run the SAM image encoder and CLIP once; reuse the result per frame."""
        image = P.check_image(image)
        start = time.perf_counter()
        sam_pixels, resized = P.sam_pixels(image, self.config.sam)
        embedding = self.model.sam_embedding(sam_pixels)
        clip = self.model.image_features(P.clip_pixels(image, self.config.vision))
        _sync(self.model.device)
        return ImageFeatures(image=image, sam_embedding=embedding, sam_input_size=resized,
                             clip=clip, seconds=time.perf_counter() - start)

    def _features(self, image: ImageOrFeatures) -> ImageFeatures:
        if isinstance(image, ImageFeatures):
            return image
        return self.encode_image(image)

    # ------------------------------------------------------------ queries
    @torch.inference_mode()
    def segment(self, image: ImageOrFeatures, text: Optional[str] = None,
                exemplar: Optional[np.ndarray] = None, exemplar_mask: Optional[np.ndarray] = None,
                audio: Optional[np.ndarray] = None, sample_rate: Optional[int] = None, *,
                decoding: str = "auto", answer: Optional[str] = None,
                refocus_lambda: Optional[float] = None) -> Referral:
        """Segment what the references point at.

        ``image``: HxWx3 uint8 RGB (or ``ImageFeatures``); ``text``: a
        referring expression; ``exemplar``: HxWx3 uint8 RGB picture of the
        object, used as given (it is the crop), or with ``exemplar_mask``,
        its HxW bool mask (background blacked out, cropped to the mask's
        box, 1 px trimmed); ``audio``: float32 samples (mono, or
        samples x channels) at ``sample_rate`` Hz (any rate; resampled).
        Any combination of text, exemplar and audio is accepted, at least one.

        ``decoding``: "forced" feeds the known answer in one pass (text
        queries: "{text}[SEG]."; or ``answer``), "greedy" generates it,
        "auto" forces when the answer is known. ``refocus_lambda``: the
        refocusing weight for this query (default: the config's).

        Absent referents (models with ``config.prompt.no_object_answer``,
        e.g. ``model/toy``): a forced query whose first answer token is less
        likely than the no-object reply's (``says_absent``, read from the same
        forward pass) skips the mask decoder; that, an empty mask, or a
        generated answer without ``[SEG]`` gives ``found=False``.
        """
        if decoding not in DECODINGS:
            raise ValueError(f"decoding: expected one of {DECODINGS}, got {decoding!r}")
        t0 = time.perf_counter()
        if not isinstance(image, ImageFeatures):
            P.check_image(image)
        refs = self._check_references(text, exemplar, exemplar_mask, audio, sample_rate)
        if answer is not None and decoding == "greedy":
            raise ValueError("answer: a forced answer cannot be combined with decoding='greedy'")
        prompt = build_prompt(self.config, question_key(refs.kinds), refs.expression,
                              force=decoding != "greedy")
        if answer is not None:
            prompt.answer = _check_answer(answer)
        if decoding == "forced" and prompt.answer is None:
            raise ValueError("decoding='forced' needs a known answer: pass text or answer")
        timings = {"checks": time.perf_counter() - t0}

        features = self._features(image)
        timings["image_encoder"] = features.seconds if features is not image else 0.0
        t = time.perf_counter()
        feats: Dict[str, torch.Tensor] = {}
        if refs.crop is not None:
            feats[IMAGE_REF] = self.model.reference_features(P.clip_pixels(refs.crop, self.config.vision))
        if refs.wave is not None:
            clips = P.audio_clips(refs.wave, int(sample_rate), self.config.audio)
            feats[AUDIO_REF] = self.model.audio_features(clips)
        _sync(self.model.device)
        timings["reference_encoders"] = time.perf_counter() - t
        weight = self.config.refocus.segment if refocus_lambda is None else float(refocus_lambda)
        return self._answer(features, prompt, feats, weight, timings)

    def _check_references(self, text, exemplar, exemplar_mask, audio, sample_rate) -> "_References":
        """Validate the references of ``segment``; ValueError says what was expected."""
        refs = _References()
        if text is not None:
            refs.expression = check_user_text(text, self.config)
            refs.kinds.append("text")
        if exemplar_mask is not None and exemplar is None:
            raise ValueError("exemplar_mask: given without an exemplar image")
        if exemplar is not None:
            exemplar = P.check_image(exemplar, "exemplar")
            mask = None if exemplar_mask is None else P.check_mask(exemplar_mask, exemplar.shape[:2])
            refs.crop = P.crop_reference(exemplar, mask=mask)
            refs.kinds.append("exemplar")
        if audio is not None:
            if self.config.audio is None:
                raise ValueError(f"audio: preset {self.config.name!r} has no audio branch")
            refs.wave = P.check_audio(audio, sample_rate, self.config.audio)
            refs.kinds.append("audio")
        if not refs.kinds:
            raise ValueError("expected at least one reference: text, exemplar (+ exemplar_mask) or audio")
        return refs

    @torch.inference_mode()
    def describe(self, image: ImageOrFeatures, box, *, decoding: str = "greedy",
                 answer: Optional[str] = None) -> Referral:
        """Describe the region ``box`` = (x_min, y_min, x_max, y_max) pixels
        and segment it.  The region is cropped (1 px trimmed) and encoded
        like an exemplar (AnyRef's ``roi=False`` path)."""
        if decoding not in ("greedy", "forced"):
            raise ValueError(f"decoding: expected 'greedy' or 'forced', got {decoding!r}")
        if decoding == "forced" and answer is None:
            raise ValueError("decoding='forced' needs the answer to force")
        t0 = time.perf_counter()
        if not isinstance(image, ImageFeatures):
            P.check_image(image)
        size = image.size if isinstance(image, ImageFeatures) else image.shape[:2]
        region = P.check_box(box, size)
        prompt = build_prompt(self.config, "region")
        prompt.answer = _check_answer(answer) if decoding == "forced" else None
        timings = {"checks": time.perf_counter() - t0}
        features = self._features(image)
        timings["image_encoder"] = features.seconds if features is not image else 0.0
        t = time.perf_counter()
        crop = P.crop_reference(features.image, box=region)
        feats = {IMAGE_REF: self.model.reference_features(P.clip_pixels(crop, self.config.vision))}
        timings["reference_encoders"] = time.perf_counter() - t
        return self._answer(features, prompt, feats, self.config.refocus.describe, timings)

    # ----------------------------------------------------------- internals
    def _answer(self, features: ImageFeatures, prompt, feats: Dict[str, torch.Tensor],
                weight: float, timings: Dict[str, float]) -> Referral:
        model, lm = self.model, self.model.language_model
        t = time.perf_counter()
        segments = tokenize_prompt(self.tokenizer, prompt.text, self.config)
        embeds, ids = model.embed_prompt(segments, dict(feats, **{IMAGE: features.clip}))
        absent = False
        if prompt.answer is not None:
            trace = forced(lm, embeds, ids, tokenize_answer(self.tokenizer, prompt.answer))
            decoding = "forced"
            absent = prompt.task == "segment" and self.says_absent(trace)
        else:
            trace = greedy(lm, embeds, ids, self.config.prompt.max_new_tokens, self.ids.eos)
            decoding = "greedy"
        _sync(model.device)
        timings["language_model"] = time.perf_counter() - t

        t = time.perf_counter()
        queries = None if absent else self.seg_queries(trace, weight)
        masks: List[np.ndarray] = []
        scores: List[float] = []
        if queries is not None:
            low_res, iou = model.decode_masks(queries, features.sam_embedding)
            logits = P.postprocess_masks(low_res, self.config.sam.image_size,
                                         features.sam_input_size, features.size)
            binary = (logits > self.config.sam.mask_threshold).cpu().numpy()
            masks = [m for m in binary]
            scores = [float(s) for s in iou.float().clamp(0.0, 1.0).cpu()]
        _sync(model.device)
        timings["mask_decoder"] = time.perf_counter() - t

        mask = np.zeros(features.size, dtype=bool)
        for m in masks:
            mask |= m
        found = bool(mask.any())
        text = self.answer_text(trace.answer_ids)
        answer = self.tokenizer.decode(trace.answer_ids, skip_special_tokens=False)
        no_object = self.config.prompt.no_object_answer
        if not found:
            scores = [0.0] * len(scores)
            if no_object and (absent or decoding == "forced"):
                text = answer = no_object
        return Referral(
            mask=mask, text=text, score=float(np.mean(scores)) if scores else 0.0,
            box=P.mask_box(mask), found=found, masks=masks, scores=scores, decoding=decoding,
            timings=timings, answer=answer)

    def says_absent(self, trace: Trace) -> bool:
        """For a model trained with absent referents (``config.prompt.no_object_answer``
        set): True when, at the position that predicts the first answer token of
        the forced pass, the no-object reply's first token is more likely than
        the forced answer's (no extra forward pass).  Always False otherwise."""
        no_object = self.config.prompt.no_object_answer
        if not no_object or trace.first_logits is None or not trace.answer_ids:
            return False
        reply = tokenize_answer(self.tokenizer, no_object)
        if not reply or reply[0] == trace.answer_ids[0]:
            return False
        logp = torch.log_softmax(trace.first_logits.float(), dim=-1)
        return bool(logp[reply[0]] > logp[trace.answer_ids[0]])

    def answer_text(self, answer_ids: List[int]) -> str:
        """The answer without special tokens and without ``[SEG]`` (and the
        space before it): "It is [SEG]." -> "It is."."""
        special = set(self.ids.special) - {self.ids.seg}
        kept = [i for i in answer_ids if i not in special]
        text = self.tokenizer.decode(kept, skip_special_tokens=False)
        return re.sub(r"\s*" + re.escape(self.config.tokens.seg), "", text).strip()

    def seg_queries(self, trace: Trace, weight: float) -> Optional[torch.Tensor]:
        """SAM prompt vectors (n, C), one per ``[SEG]`` in the answer; None if none.

        For each ``[SEG]`` at expanded index ``i``: ``e = i - 1``; ``s`` is the
        position predicting the first answer token (``answer_start - 1``);
        the refocused state goes through ``text_hidden_fcs``.
        """
        start = trace.answer_start
        positions = [start + k for k, tok in enumerate(trace.answer_ids) if tok == self.ids.seg]
        if not positions:
            return None
        s = start - 1
        states = []
        for i in positions:
            e = i - 1
            row = attention_row(self.model.language_model, trace.layer_input, e) if weight else None
            states.append(refocus(trace.hidden, row, s, e, weight))
        return self.model.text_hidden_fcs(torch.stack(states))


@dataclass
class _References:
    """Checked references of one ``segment`` call."""

    kinds: List[str] = field(default_factory=list)
    expression: Optional[str] = None
    crop: Optional[np.ndarray] = None  # exemplar crop, RGB
    wave: Optional[np.ndarray] = None  # mono float32 samples


def _check_answer(answer) -> str:
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"answer: expected a non-empty str to force, got {answer!r}")
    return answer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
