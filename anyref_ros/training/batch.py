"""From ``Sample`` to model inputs, with the pipeline's own pre-processing.

``encode_sample`` builds exactly what ``AnyRefPipeline.segment``/``describe``
would feed the model for that query (prompt template, tokenization, CLIP /
SAM / audio pre-processing, exemplar and region crops) plus the training
targets: the answer tokens followed by EOS, and the ground-truth mask.
``collate`` stacks a list of them into a ``Batch``.

Absent-object text samples (``metadata["absent"]``, answer = the no-object
reply without ``[SEG]``) become two examples in ``encode_samples``: the
reply itself (language-model loss only), and the pipeline's forced pass
"{query}[SEG]." with no language-model labels, an empty target mask and an
IoU target of 0 (so the mask decoder learns to find nothing there, and its
IoU head to say so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.sample import Sample
from ..model import processing as P
from ..model.config import AnyRefConfig
from ..model.prompts import Segment, build_prompt, tokenize_answer, tokenize_prompt

#: Sample task -> prompt template key.
TEMPLATE = {"text": "text", "exemplar": "exemplar", "audio": "audio", "region": "region"}


def exclusive_box(box: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
    """``Sample.box`` (inclusive max) -> the pipeline's box (exclusive max)."""
    x0, y0, x1, y1 = box
    return (x0, y0, x1 + 1, y1 + 1)


def reference_crop(sample: Sample) -> Optional[np.ndarray]:
    """The exemplar / region crop the pipeline would encode, or None."""
    if sample.task == "exemplar":
        return P.crop_reference(sample.exemplar, mask=sample.exemplar_mask)
    if sample.task == "region":
        region = P.check_box(exclusive_box(sample.box), sample.image.shape[:2])
        return P.crop_reference(sample.image, box=region)
    return None


@dataclass
class Example:
    """One encoded sample (CPU tensors)."""

    task: str
    segments: List[Segment]
    answer_ids: List[int]  # answer + EOS
    seg_offsets: List[int]  # indices of [SEG] in answer_ids
    sam_pixels: torch.Tensor  # (3, S, S)
    sam_input_size: Tuple[int, int]
    size: Tuple[int, int]
    clip_pixels: torch.Tensor  # (3, s, s)
    ref_pixels: Optional[torch.Tensor] = None  # (3, s, s)
    audio_clips: Optional[torch.Tensor] = None  # (clips, 1, mel, T)
    mask: Optional[torch.Tensor] = None  # (H, W) float target
    lm: bool = True  # False: no language-model labels (absent-object forced pass)


def encode_samples(samples: Sequence[Sample], config: AnyRefConfig, tokenizer,
                   seg_id: int) -> List[Example]:
    """``encode_sample`` of each sample, plus the forced-pass companion of
    each absent-object text sample (module docstring)."""
    out: List[Example] = []
    for sample in samples:
        ex = encode_sample(sample, config, tokenizer, seg_id)
        out.append(ex)
        if sample.task == "text" and sample.metadata.get("absent") and not ex.seg_offsets:
            forced = build_prompt(config, "text", sample.query, force=True).answer
            ids = tokenize_answer(tokenizer, forced) + [tokenizer.eos_token_id]
            out.append(Example(task=ex.task, segments=ex.segments, answer_ids=ids,
                               seg_offsets=[i for i, t in enumerate(ids) if t == seg_id],
                               sam_pixels=ex.sam_pixels, sam_input_size=ex.sam_input_size,
                               size=ex.size, clip_pixels=ex.clip_pixels,
                               mask=torch.zeros(ex.size, dtype=torch.float32), lm=False))
    return out


def encode_sample(sample: Sample, config: AnyRefConfig, tokenizer, seg_id: int) -> Example:
    key = TEMPLATE[sample.task]
    prompt = build_prompt(config, key, sample.query if key == "text" else None, force=False)
    segments = tokenize_prompt(tokenizer, prompt.text, config)
    answer = sample.answer.replace("[SEG]", config.tokens.seg)
    answer_ids = tokenize_answer(tokenizer, answer) + [tokenizer.eos_token_id]
    image = P.check_image(sample.image)
    sam_pixels, resized = P.sam_pixels(image, config.sam)
    ex = Example(task=sample.task, segments=segments, answer_ids=answer_ids,
                 seg_offsets=[i for i, t in enumerate(answer_ids) if t == seg_id],
                 sam_pixels=sam_pixels[0], sam_input_size=resized, size=image.shape[:2],
                 clip_pixels=P.clip_pixels(image, config.vision)[0])
    crop = reference_crop(sample)
    if crop is not None:
        ex.ref_pixels = P.clip_pixels(crop, config.vision)[0]
    if sample.task == "audio":
        wave = P.check_audio(sample.audio, sample.sample_rate, config.audio)
        ex.audio_clips = P.audio_clips(wave, int(sample.sample_rate), config.audio)[0]
    if ex.seg_offsets:
        ex.mask = torch.from_numpy(sample.mask.astype(np.float32))
    return ex


@dataclass
class Batch:
    examples: List[Example]
    sam_pixels: torch.Tensor  # (B, 3, S, S)
    clip_pixels: torch.Tensor  # (B, 3, s, s)
    ref_pixels: Optional[torch.Tensor] = None  # (R, 3, s, s), examples with a crop, in order
    audio_clips: Optional[torch.Tensor] = None  # (A, clips, 1, mel, T)
    tasks: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)

    def label_counts(self) -> Tuple[int, int]:
        """(answer tokens with LM labels, [SEG] masks): what the loss terms are averaged over."""
        return (sum(len(e.answer_ids) for e in self.examples if e.lm),
                sum(1 for e in self.examples if e.seg_offsets))

    def to(self, device: torch.device) -> "Batch":
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        return Batch(self.examples, move(self.sam_pixels), move(self.clip_pixels),
                     move(self.ref_pixels), move(self.audio_clips), self.tasks)


def _stack(tensors: Sequence[Optional[torch.Tensor]]) -> Optional[torch.Tensor]:
    present = [t for t in tensors if t is not None]
    return torch.stack(present) if present else None


def collate(examples: Sequence[Example]) -> Batch:
    examples = list(examples)
    return Batch(examples=examples,
                 sam_pixels=torch.stack([e.sam_pixels for e in examples]),
                 clip_pixels=torch.stack([e.clip_pixels for e in examples]),
                 ref_pixels=_stack([e.ref_pixels for e in examples]),
                 audio_clips=_stack([e.audio_clips for e in examples]),
                 tasks=[e.task for e in examples])
