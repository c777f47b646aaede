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
    rs = pipe.segment_batch(feats, [dict(text="the cup"), dict(text="the box")])

Every query on one ``ImageFeatures`` shares the start of its prompt (system
prompt, image, fixed start of the user turn): its language-model KV cache is
computed once per frame, kept on the features (``ImageFeatures.prefix``) and
reused (``AnyRefPipeline.prefix_cache``, on by default).  ``segment_batch``
runs forced text queries as one padded batch and every ``[SEG]`` through the
mask decoder at once; the answers equal those of one call each.

Long calls can be watched and stopped: ``segment``, ``describe`` and
``segment_batch`` take ``stop`` (a callable asked before every
language-model pass, every generated token included: True ends the call
with ``generation.Stopped``) and ``progress`` (called with the request's
index, a stage of :data:`STAGES` and the answer text so far).

Prompts are checked before any model work: user text holding a special or
added token of the tokenizer or the model is refused (``check_user_text``),
and so is a prompt longer than the language model's context (its
``max_position_embeddings``), with the numbers in the message.
"""

from __future__ import annotations

import collections
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import processing as P
from .config import AnyRefConfig
from .generation import Prefix, Trace, check_stop, context_length, forced_batch, greedy, run_prefix
from .modeling import AnyRefModel
from .prompts import (AUDIO_REF, IMAGE, IMAGE_REF, Prompt, build_prompt, check_user_text, question_key,
                      shared_prefix, split_prefix, tokenize_answer, tokenize_prompt)
from .refocus import attention_row, refocus
from .tokenization import TokenIds

DECODINGS = ("auto", "forced", "greedy")
#: Stages reported through ``progress`` (the Refer action's feedback stages).
STAGE_ENCODING_REFERENCE, STAGE_GENERATING, STAGE_DECODING_MASK = "encoding_reference", "generating", "decoding_mask"
STAGES = (STAGE_ENCODING_REFERENCE, STAGE_GENERATING, STAGE_DECODING_MASK)
Progress = Callable[[int, str, str], None]  # (request index, stage, answer text so far)


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
    ``clip``: (P, llm hidden) projected CLIP patch features;
    ``prefix``: the language model's run over the prompt start every query
    shares (KV cache and last-layer states), made by the first query that
    needs it and dropped with the features.
    """

    image: np.ndarray
    sam_embedding: torch.Tensor
    sam_input_size: Tuple[int, int]
    clip: torch.Tensor
    seconds: float = 0.0
    prefix: Optional[Tuple[int, Prefix]] = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> Tuple[int, int]:
        return self.image.shape[:2]


ImageOrFeatures = Union[np.ndarray, ImageFeatures]


#: Exemplar encodings kept (standing exemplar queries: one each, for their life).
EXEMPLAR_CACHE = 32


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
        #: reuse the prompt start's KV cache per frame (False: every query runs its whole prompt)
        self.prefix_cache = True
        #: prefix_built: frames whose shared prompt start was run; prefix_used: queries that
        #: continued from one; prefix_missed: queries whose prompt did not start with its tokens
        self.counters: Dict[str, int] = {"prefix_built": 0, "prefix_used": 0, "prefix_missed": 0}
        self._prefix_segments: Optional[list] = None
        self._token_memo: Dict[str, List[int]] = {}  # prompt chunk -> token ids (see tokenize_prompt)
        # Exemplar crop -> its reference features: an exemplar asked again (a standing
        # query, on every frame) is encoded once. Keyed by the crop's bytes.
        self._exemplar_cache: "collections.OrderedDict[tuple, torch.Tensor]" = collections.OrderedDict()
        self.exemplar_cache_hits = 0

    # ------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path_or_preset: str | Path, device: Optional[str | torch.device] = None,
                        dtype: Optional[str | torch.dtype] = None, *, quantization: Optional[str] = None,
                        merge_lora: bool = False, random_weights: bool = False,
                        compile: bool = False) -> "AnyRefPipeline":
        """Load a checkpoint folder (``config.json`` + tokenizer + safetensors)
        or build a preset (``tiny``; ``anyref-7b``/``lisa-7b`` need weight
        paths, see ``WeightsConfig``).  ``device``: "cpu", "cuda", "cuda:N"
        (default: cuda if available); ``dtype``: float32/bfloat16/float16
        (default: the config's).  Nothing is downloaded.

        For inference (see ``optimize.py``): ``quantization`` "8bit"/"4bit"
        (bitsandbytes; None: the config's, "none": off); ``merge_lora``: the
        LoRA adapter merged into the base weights (such a pipeline cannot be
        saved or trained); ``compile``: ``torch.compile`` on CUDA;
        ``random_weights``: the full architecture with random weights built
        directly on ``device`` in ``dtype``, no weight file needed (e.g.
        ``from_pretrained("anyref-7b", random_weights=True)`` for timing)."""
        from .loading import load_pipeline

        return load_pipeline(cls, path_or_preset, device=device, dtype=dtype, quantization=quantization,
                             merge_lora=merge_lora, random_weights=random_weights, compile=compile)

    @classmethod
    def from_config(cls, config: AnyRefConfig, device: Optional[str | torch.device] = None,
                    dtype: Optional[str | torch.dtype] = None,
                    folder: Optional[str | Path] = None, **options) -> "AnyRefPipeline":
        """Build from a config object (relative weight paths against ``folder``);
        ``options`` as for ``from_pretrained``."""
        from .loading import pipeline_from_config

        return pipeline_from_config(cls, config, Path(folder) if folder is not None else None,
                                    device=device, dtype=dtype, **options)

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
                refocus_lambda: Optional[float] = None, stop: Optional[Callable[[], bool]] = None,
                progress: Optional[Progress] = None) -> Referral:
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

        ``stop``/``progress``: see the module docstring.
        """
        t0 = time.perf_counter()
        if decoding not in DECODINGS:
            raise ValueError(f"decoding: expected one of {DECODINGS}, got {decoding!r}")
        if not isinstance(image, ImageFeatures):
            P.check_image(image)
        _report(progress, 0, STAGE_ENCODING_REFERENCE)
        query = self._segment_query(t0, text, exemplar, exemplar_mask, audio, sample_rate,
                                    decoding=decoding, answer=answer, refocus_lambda=refocus_lambda)
        features = self._features(image)
        query.timings["image_encoder"] = features.seconds if features is not image else 0.0
        return self._answer_many(features, [query], stop, progress)[0]

    @torch.inference_mode()
    def describe(self, image: ImageOrFeatures, box, *, decoding: str = "greedy",
                 answer: Optional[str] = None, stop: Optional[Callable[[], bool]] = None,
                 progress: Optional[Progress] = None) -> Referral:
        """Describe the region ``box`` = (x_min, y_min, x_max, y_max) pixels
        and segment it.  The region is cropped (1 px trimmed) and encoded
        like an exemplar (AnyRef's ``roi=False`` path)."""
        t0 = time.perf_counter()
        _check_describe_decoding(decoding, answer)
        if not isinstance(image, ImageFeatures):
            P.check_image(image)
            P.check_box(box, image.shape[:2])  # before the image encoders run
        features = self._features(image)
        _report(progress, 0, STAGE_ENCODING_REFERENCE)
        query = self._describe_query(t0, features, box, decoding=decoding, answer=answer)
        query.timings["image_encoder"] = features.seconds if features is not image else 0.0
        return self._answer_many(features, [query], stop, progress)[0]

    @torch.inference_mode()
    def segment_batch(self, image: ImageOrFeatures, requests: Sequence[Mapping[str, Any]], *,
                      return_exceptions: bool = False, stop: Optional[Callable[[], bool]] = None,
                      progress: Optional[Progress] = None) -> List[Union[Referral, Exception]]:
        """Answer several queries on one image in one call.

        Each request is a mapping of ``segment``'s keyword arguments (``text``,
        ``exemplar``, ``exemplar_mask``, ``audio``, ``sample_rate``,
        ``decoding``, ``answer``, ``refocus_lambda``), or of ``describe``'s
        (``box``, ``decoding``, ``answer``).  The image is encoded once, the
        shared prompt start runs once, forced queries (text) go through the
        language model as one padded batch, generated ones (exemplar, audio,
        region) one after another on the shared start, and every ``[SEG]``
        through the mask decoder at once.  The answers are those of one
        ``segment``/``describe`` call each, in order.  ``return_exceptions``:
        a request with bad input gets its exception in the list instead of
        failing the call (the others are still answered).  ``stop``/``progress``:
        see the module docstring (``stop`` ends the whole call).
        """
        if not isinstance(image, ImageFeatures):
            P.check_image(image)
        features = self._features(image)
        encoded = features.seconds if features is not image else 0.0
        results: List[Any] = [None] * len(requests)
        queries: List[_Query] = []
        for k, request in enumerate(requests):
            t0 = time.perf_counter()
            try:
                _report(progress, k, STAGE_ENCODING_REFERENCE)
                if not isinstance(request, Mapping):
                    raise ValueError(f"requests[{k}]: expected a mapping of segment/describe "
                                     f"arguments, got {type(request).__name__}")
                if "box" in request:
                    kwargs = dict(request)
                    box = kwargs.pop("box")
                    decoding = kwargs.pop("decoding", "greedy")
                    _check_describe_decoding(decoding, kwargs.get("answer"))
                    query = self._describe_query(t0, features, box, decoding=decoding, **kwargs)
                else:
                    kwargs = dict(request)
                    if kwargs.get("decoding", "auto") not in DECODINGS:
                        raise ValueError(f"decoding: expected one of {DECODINGS}, got {kwargs['decoding']!r}")
                    query = self._segment_query(t0, **kwargs)
            except Exception as exc:  # noqa: BLE001 - handed back per request when asked
                if not return_exceptions:
                    raise
                results[k] = exc
                continue
            query.timings["image_encoder"] = encoded if not queries else 0.0
            query.index = k
            queries.append(query)
        if queries:
            for query, referral in zip(queries, self._answer_many(features, queries, stop, progress)):
                results[query.index] = referral
        return results

    def _segment_query(self, t0: float, text=None, exemplar=None, exemplar_mask=None, audio=None,
                       sample_rate=None, *, decoding: str = "auto", answer: Optional[str] = None,
                       refocus_lambda: Optional[float] = None) -> "_Query":
        """Check a segment request, build its prompt and run its reference encoders."""
        refs = self._check_references(text, exemplar, exemplar_mask, audio, sample_rate)
        if answer is not None and decoding == "greedy":
            raise ValueError("answer: a forced answer cannot be combined with decoding='greedy'")
        prompt = build_prompt(self.config, question_key(refs.kinds), refs.expression,
                              force=decoding != "greedy")
        if answer is not None:
            prompt.answer = _check_answer(answer)
        if decoding == "forced" and prompt.answer is None:
            raise ValueError("decoding='forced' needs a known answer: pass text or answer")
        segments = self._check_length(prompt, "text" if text is not None else "prompt")
        timings = {"checks": time.perf_counter() - t0}
        t = time.perf_counter()
        feats: Dict[str, torch.Tensor] = {}
        if refs.crop is not None:
            feats[IMAGE_REF] = self._exemplar_features(refs.crop)
        if refs.wave is not None:
            clips = P.audio_clips(refs.wave, int(sample_rate), self.config.audio)
            feats[AUDIO_REF] = self.model.audio_features(clips)
        _sync(self.model.device)
        timings["reference_encoders"] = time.perf_counter() - t
        weight = self.config.refocus.segment if refocus_lambda is None else float(refocus_lambda)
        return _Query(prompt=prompt, feats=feats, weight=weight, timings=timings, segments=segments)

    def _exemplar_features(self, crop: np.ndarray) -> torch.Tensor:
        """The reference features of an exemplar crop, encoded once per crop
        (the last :data:`EXEMPLAR_CACHE` crops are kept)."""
        key = (crop.shape, hashlib.blake2b(np.ascontiguousarray(crop).tobytes(), digest_size=16).digest())
        cached = self._exemplar_cache.get(key)
        if cached is not None:
            self._exemplar_cache.move_to_end(key)
            self.exemplar_cache_hits += 1
            return cached
        feats = self.model.reference_features(P.clip_pixels(crop, self.config.vision))
        self._exemplar_cache[key] = feats
        while len(self._exemplar_cache) > EXEMPLAR_CACHE:
            self._exemplar_cache.popitem(last=False)
        return feats

    def _describe_query(self, t0: float, features: ImageFeatures, box, *, decoding: str = "greedy",
                        answer: Optional[str] = None) -> "_Query":
        """Check a describe request, build its prompt and encode the region crop."""
        region = P.check_box(box, features.size)
        prompt = build_prompt(self.config, "region")
        prompt.answer = _check_answer(answer) if decoding == "forced" else None
        segments = self._check_length(prompt, "answer" if prompt.answer is not None else "prompt")
        timings = {"checks": time.perf_counter() - t0}
        t = time.perf_counter()
        crop = P.crop_reference(features.image, box=region)
        feats = {IMAGE_REF: self.model.reference_features(P.clip_pixels(crop, self.config.vision))}
        timings["reference_encoders"] = time.perf_counter() - t
        return _Query(prompt=prompt, feats=feats, weight=self.config.refocus.describe, timings=timings,
                      segments=segments)

    def prompt_positions(self, segments) -> int:
        """Positions of a tokenized prompt in the expanded sequence (the image
        placeholder counts its CLIP patches, every other placeholder one)."""
        patches = (self.config.vision.image_size // self.config.vision.patch_size) ** 2
        return sum(len(seg) if not isinstance(seg, str) else (patches if seg == IMAGE else 1)
                   for seg in segments)

    def _check_length(self, prompt: Prompt, what: str) -> list:
        """Tokenize ``prompt``; ValueError when it (with its forced answer, or
        with room for one generated token) does not fit the model's context."""
        segments = tokenize_prompt(self.tokenizer, prompt.text, self.config, self._token_memo)
        context = context_length(self.model.language_model)
        if not context:
            return segments
        need = self.prompt_positions(segments)
        need += len(tokenize_answer(self.tokenizer, prompt.answer)) if prompt.answer is not None else 1
        if need > context:
            raise ValueError(
                f"{what}: too long for the model: the prompt{' and answer' if prompt.answer else ''} "
                f"take {need} positions, and the model's context is {context} positions "
                f"({need - context} too many); shorten the {what}")
        return segments

    def _check_references(self, text, exemplar, exemplar_mask, audio, sample_rate) -> "_References":
        """Validate the references of ``segment``; ValueError says what was expected."""
        refs = _References()
        if text is not None:
            refs.expression = check_user_text(text, self.config, self.tokenizer)
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

    # ----------------------------------------------------------- internals
    def prefix(self, features: ImageFeatures) -> Optional[Prefix]:
        """The language model's run over the prompt start shared by every
        query (``prompts.shared_prefix``) on ``features``: computed on first
        use, then kept on the features.  None when ``prefix_cache`` is off."""
        if not self.prefix_cache:
            return None
        owner = id(self.model)
        if features.prefix is not None and features.prefix[0] == owner:
            return features.prefix[1]
        if self._prefix_segments is None:
            self._prefix_segments = shared_prefix(self.tokenizer, self.config)
        segments = self._prefix_segments
        if not segments:
            return None
        feats = {IMAGE: features.clip} if IMAGE in segments else {}
        embeds, ids = self.model.embed_prompt(segments, feats)
        prefix = run_prefix(self.model.language_model, embeds, ids)
        features.prefix = (owner, prefix)
        self.counters["prefix_built"] += 1
        return prefix

    def traces(self, features: ImageFeatures, queries: Sequence["_Query"],
               stop: Optional[Callable[[], bool]] = None, progress: Optional[Progress] = None) -> List[Trace]:
        """Run the language model for ``queries`` on ``features``: forced ones
        as one batch, generated ones one after another, all continuing from
        the shared prefix when its tokens start the prompt (else the whole
        prompt runs).  Sets each query's ``decoding`` and its
        ``language_model`` time (the batch's, for batched queries).
        ``stop`` is asked before every pass and every generated token."""
        model, lm = self.model, self.model.language_model
        t = time.perf_counter()
        check_stop(stop)
        for q in queries:
            _report(progress, q.index, STAGE_GENERATING)
        prefix = self.prefix(features)
        inputs = []
        for q in queries:
            segments = q.segments or tokenize_prompt(self.tokenizer, q.prompt.text, self.config, self._token_memo)
            rest = split_prefix(segments, self._prefix_segments) if prefix is not None else None
            if prefix is not None:
                self.counters["prefix_missed" if rest is None else "prefix_used"] += 1
            if rest is None:
                q.prefix = None
                inputs.append(model.embed_prompt(segments, dict(q.feats, **{IMAGE: features.clip})))
            else:
                q.prefix = prefix
                inputs.append(model.embed_prompt(rest, q.feats))
        traces: List[Optional[Trace]] = [None] * len(queries)
        for start in ([prefix, None] if prefix is not None else [None]):
            batch = [k for k, q in enumerate(queries) if q.prompt.answer is not None and q.prefix is start]
            if batch:
                check_stop(stop)
                items = [(*inputs[k], tokenize_answer(self.tokenizer, queries[k].prompt.answer)) for k in batch]
                for k, trace in zip(batch, forced_batch(lm, items, start)):
                    traces[k], queries[k].decoding = trace, "forced"
        for k, q in enumerate(queries):
            if q.prompt.answer is None:
                on_token = None if progress is None else (
                    lambda ids, q=q: _report(progress, q.index, STAGE_GENERATING, self.answer_text(ids)))
                traces[k] = greedy(lm, *inputs[k], self.config.prompt.max_new_tokens, self.ids.eos, q.prefix,
                                   stop=stop, on_token=on_token)
                q.decoding = "greedy"
        _sync(model.device)
        seconds = time.perf_counter() - t
        for q in queries:
            q.timings["language_model"] = seconds
        return traces

    def _answer_many(self, features: ImageFeatures, queries: Sequence["_Query"],
                     stop: Optional[Callable[[], bool]] = None,
                     progress: Optional[Progress] = None) -> List[Referral]:
        traces = self.traces(features, queries, stop, progress)
        check_stop(stop)
        t = time.perf_counter()
        for q in queries:
            _report(progress, q.index, STAGE_DECODING_MASK)
        vectors, owners = [], []
        for k, (q, trace) in enumerate(zip(queries, traces)):
            q.absent = q.decoding == "forced" and q.prompt.task == "segment" and self.says_absent(trace)
            v = None if q.absent else self.seg_queries(trace, q.weight)
            if v is not None:
                vectors.append(v)
                owners.extend([k] * v.shape[0])
        masks: List[List[np.ndarray]] = [[] for _ in queries]
        scores: List[List[float]] = [[] for _ in queries]
        if vectors:
            low_res, iou = self.model.decode_masks(torch.cat(vectors), features.sam_embedding)
            binary = P.masks_at_size(low_res, self.config.sam.image_size, features.sam_input_size,
                                     features.size, self.config.sam.mask_threshold)
            iou = iou.float().clamp(0.0, 1.0).cpu().tolist()
            for j, k in enumerate(owners):
                masks[k].append(binary[j])
                scores[k].append(float(iou[j]))
        _sync(self.model.device)
        seconds = time.perf_counter() - t
        out = []
        for k, (q, trace) in enumerate(zip(queries, traces)):
            q.timings["mask_decoder"] = seconds
            out.append(self._referral(features, q, trace, masks[k], scores[k]))
        return out

    def _referral(self, features: ImageFeatures, q: "_Query", trace: Trace,
                  masks: List[np.ndarray], scores: List[float]) -> Referral:
        mask = masks[0].copy() if masks else np.zeros(features.size, dtype=bool)
        for m in masks[1:]:
            mask |= m
        found = bool(mask.any())
        text = self.answer_text(trace.answer_ids)
        answer = self.tokenizer.decode(trace.answer_ids, skip_special_tokens=False)
        no_object = self.config.prompt.no_object_answer
        if not found:
            scores = [0.0] * len(scores)
            if no_object and (q.absent or q.decoding == "forced"):
                text = answer = no_object
        return Referral(
            mask=mask, text=text, score=float(np.mean(scores)) if scores else 0.0,
            box=P.mask_box(mask), found=found, masks=masks, scores=scores, decoding=q.decoding,
            timings=q.timings, answer=answer)

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
            row = attention_row(self.model.language_model, trace.layer_input, e, trace.keys) if weight else None
            states.append(refocus(trace.hidden, row, s, e, weight))
        return self.model.text_hidden_fcs(torch.stack(states))


@dataclass
class _Query:
    """One checked query, ready for the language model."""

    prompt: Prompt
    feats: Dict[str, torch.Tensor]  # reference features (exemplar, audio, region)
    weight: float  # refocusing weight
    timings: Dict[str, float]
    decoding: str = ""
    prefix: Optional[Prefix] = None  # the shared prefix it continued from
    absent: bool = False
    index: int = 0
    segments: Optional[list] = None  # the tokenized prompt (checked against the context)


@dataclass
class _References:
    """Checked references of one ``segment`` call."""

    kinds: List[str] = field(default_factory=list)
    expression: Optional[str] = None
    crop: Optional[np.ndarray] = None  # exemplar crop, RGB
    wave: Optional[np.ndarray] = None  # mono float32 samples


def _report(progress: Optional[Progress], index: int, stage: str, text: str = "") -> None:
    if progress is not None:
        progress(index, stage, text or "")


def _check_describe_decoding(decoding: str, answer) -> None:
    if decoding not in ("greedy", "forced"):
        raise ValueError(f"decoding: expected 'greedy' or 'forced', got {decoding!r}")
    if decoding == "forced" and answer is None:
        raise ValueError("decoding='forced' needs the answer to force")


def _check_answer(answer) -> str:
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"answer: expected a non-empty str to force, got {answer!r}")
    return answer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
