"""The one sample type shared by the toy world and every dataset reader.

A :class:`Sample` is what a training loop or an evaluation script needs for
one referring query: the scene image, the kind of reference (``task``), the
reference itself (text, exemplar crop, sound or box), the answer the model
should write, and the ground-truth mask(s).

Answers follow AnyRef's templates: the referent is named and directly
followed (no space) by the segmentation token, then a full stop, e.g.
``"red circle[SEG]."``. The token string is a parameter everywhere
(``seg_token``) because the model code owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The four kinds of reference. "region" is referring-expression generation:
#: a box goes in, a description (and the box's mask) comes out.
TASKS = ("text", "exemplar", "audio", "region")

#: Default segmentation token (the model code's ``[SEG]``, the paper's ``<obj>``).
SEG_TOKEN = "[SEG]"

#: Answer template: ``description`` then the token then a full stop.
ANSWER_TEMPLATE = "{description}{seg_token}."

#: AVSBench MS3 answer (no class name): "it is [SEG]."
MS3_ANSWER_TEMPLATE = "it is {seg_token}."


def format_answer(description: str, seg_token: str = SEG_TOKEN, with_mask: bool = True) -> str:
    """Return the target answer for ``description``.

    ``format_answer("red circle")`` -> ``"red circle[SEG]."``; with
    ``with_mask=False`` (region description without a mask) -> ``"red circle."``.
    """
    return ANSWER_TEMPLATE.format(description=description, seg_token=seg_token if with_mask else "")


Box = tuple[int, int, int, int]


@dataclass
class Sample:
    """One referring sample.

    Attributes:
        image: H x W x 3 uint8 RGB scene.
        task: one of :data:`TASKS`.
        answer: target answer text, e.g. ``"red circle[SEG]."``.
        description: the naming / describing part of the answer (text before
            the token), or None where the answer names nothing (MS3).
        query: the text reference (task "text"), else None.
        exemplar: h x w x 3 uint8 crop of the reference object (task "exemplar").
        exemplar_mask: h x w bool mask of the exemplar object, or None.
        audio: 1-D float32 mono waveform (task "audio"), with ``sample_rate`` in Hz.
        box: (x_min, y_min, x_max, y_max), inclusive pixel coordinates (task "region").
        masks: one H x W bool mask per referent (instance); empty when the
            referent is absent (an all-false target).
        metadata: free-form facts (source file, ids, toy objects, ...).
    """

    image: np.ndarray
    task: str
    answer: str
    description: str | None = None
    query: str | None = None
    exemplar: np.ndarray | None = None
    exemplar_mask: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    box: Box | None = None
    masks: list[np.ndarray] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8, got {self.image.shape} {self.image.dtype}")
        for m in self.masks:
            if m.shape != self.image.shape[:2] or m.dtype != bool:
                raise ValueError(f"masks must be H x W bool like the image, got {m.shape} {m.dtype}")

    @property
    def mask(self) -> np.ndarray:
        """Union of :attr:`masks` (H x W bool); all false when there is no referent."""
        out = np.zeros(self.image.shape[:2], dtype=bool)
        for m in self.masks:
            out |= m
        return out
