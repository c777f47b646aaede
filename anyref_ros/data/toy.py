"""Toy referring world: procedural scenes of coloured shapes for all four tasks.

Every sample is a pure function of ``(seed, index)`` (and the constructor
parameters): its generator is ``numpy.random.default_rng([seed, index])``
and the draws happen in this order:

1. task (always drawn, even when the caller fixes the task, so the rest of
   the stream does not depend on that choice), with ``task_weights``;
2. object count n in 2..4;
3. the n (colour, shape) pairs, all distinct in the scene. For "audio" and
   "exemplar" the target shape is drawn first and the other objects get
   other shapes, so exactly one object has the target's shape;
4. the target's position in the object list;
5. placement (:func:`~anyref_ros.data.toy_render.place_objects`), then the
   scene (:func:`~anyref_ros.data.toy_render.render_scene`);
6. the task's reference: the expression form (text), the sound (audio),
   the exemplar's colour, size and pixels (exemplar); the region needs none.

Held-out protocol: training uses seeds ``>= TRAIN_SEED_BASE`` (1000, 1001,
... e.g. one per run or worker); evaluation uses ``EVAL_SEED`` (0), which
no training run may use. Evaluation sets are indices ``0..N-1`` of
``ToyWorld(EVAL_SEED)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from .sample import SEG_TOKEN, TASKS, Sample, format_answer
from .toy_audio import SAMPLE_RATE, shape_sound
from .toy_render import (
    COLOURS,
    DEFAULT_IMAGE_SIZE,
    SHAPES,
    ToyObject,
    place_objects,
    render_exemplar,
    render_scene,
    scaled_size_range,
)

TRAIN_SEED_BASE = 1000
EVAL_SEED = 0
OBJECT_COUNT = (2, 4)
_PAIRS = [(c, s) for c in COLOURS for s in SHAPES]  # 12 (colour, shape) pairs, fixed order


def train_seed(k: int = 0) -> int:
    """The k-th training seed (k >= 0): ``TRAIN_SEED_BASE + k``, never ``EVAL_SEED``."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return TRAIN_SEED_BASE + k


def text_expressions(target: ToyObject, objects: list[ToyObject]) -> list[str]:
    """Expressions that single out ``target`` among ``objects``, in a fixed order:
    ``"{colour} {shape}"`` always (pairs are unique in a scene), ``"{shape}"``
    if no other object has that shape, ``"{colour} object"`` if no other
    object has that colour."""
    others = [o for o in objects if o is not target]
    forms = [target.name]
    if all(o.shape != target.shape for o in others):
        forms.append(target.shape)
    if all(o.colour != target.colour for o in others):
        forms.append(f"{target.colour} object")
    return forms


class ToyWorld:
    """Deterministic generator of toy samples.

    Args:
        seed: non-negative int; see the module docstring for the held-out protocol.
        size: image size (W, H); any size works.
        task_weights: relative weight per task (missing tasks get 0);
            default: all four equally.
        size_range: object side range in pixels (inclusive); default scales
            (16, 40) with the image (:func:`scaled_size_range`).
        audio_seconds: length of sound references (>= 2 s recommended).
        seg_token: the segmentation token written in answers.
    """

    def __init__(
        self,
        seed: int,
        size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        task_weights: Mapping[str, float] | None = None,
        size_range: tuple[int, int] | None = None,
        audio_seconds: float = 2.0,
        seg_token: str = SEG_TOKEN,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        weights = dict(task_weights) if task_weights is not None else {t: 1.0 for t in TASKS}
        unknown = set(weights) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown tasks in task_weights: {sorted(unknown)}; expected {TASKS}")
        p = np.array([float(weights.get(t, 0.0)) for t in TASKS])
        if (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"task_weights must be >= 0 with a positive sum, got {weights}")
        self.seed = seed
        self.size = tuple(size)
        self.task_probs = p / p.sum()
        self.size_range = size_range or scaled_size_range(self.size)
        self.audio_seconds = audio_seconds
        self.seg_token = seg_token

    def sample(self, index: int, task: str | None = None) -> Sample:
        """Return sample ``index`` (>= 0); ``task`` overrides the drawn task."""
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        rng = np.random.default_rng([self.seed, index])
        drawn = TASKS[int(rng.choice(len(TASKS), p=self.task_probs))]
        task = task or drawn
        objects, target = self._scene_objects(rng, task)
        image, masks = render_scene(objects, self.size, rng)
        obj = objects[target]
        fields = dict(image=image, task=task, masks=[masks[target]],
                      metadata={"seed": self.seed, "index": index, "target": target,
                                "objects": [o.to_dict() for o in objects]})
        if task == "text":
            forms = text_expressions(obj, objects)
            query = forms[int(rng.integers(len(forms)))]
            return Sample(query=query, description=query, answer=self._answer(query), **fields)
        if task == "audio":
            audio = shape_sound(rng, obj.shape, self.audio_seconds, SAMPLE_RATE)
            return Sample(audio=audio, sample_rate=SAMPLE_RATE, description=obj.shape,
                          answer=self._answer(obj.shape), **fields)
        if task == "exemplar":
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            side = int(rng.integers(self.size_range[0], self.size_range[1] + 1))
            crop, crop_mask = render_exemplar(rng, obj.shape, colour, side)
            fields["metadata"]["exemplar_colour"] = colour
            return Sample(exemplar=crop, exemplar_mask=crop_mask, description=obj.shape,
                          answer=self._answer(obj.shape), **fields)
        return Sample(box=obj.box, description=obj.name, answer=self._answer(obj.name), **fields)

    def _answer(self, description: str) -> str:
        return format_answer(description, self.seg_token)

    def _scene_objects(self, rng: np.random.Generator, task: str) -> tuple[list[ToyObject], int]:
        """Draw the objects of a scene and the index of the target (steps 2-5)."""
        n = int(rng.integers(OBJECT_COUNT[0], OBJECT_COUNT[1] + 1))
        if task in ("audio", "exemplar"):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            rest = [p for p in _PAIRS if p[1] != shape]
            picks = rng.choice(len(rest), size=n - 1, replace=False)
            others = [rest[int(i)] for i in picks]
            target = int(rng.integers(n))
            specs = others[:target] + [(colour, shape)] + others[target:]
        else:
            picks = rng.choice(len(_PAIRS), size=n, replace=False)
            specs = [_PAIRS[int(i)] for i in picks]
            target = int(rng.integers(n))
        objects = place_objects(rng, specs, self.size, self.size_range)
        return objects, target

    def __iter__(self) -> Iterator[Sample]:
        """Endless stream: samples 0, 1, 2, ..."""
        index = 0
        while True:
            yield self.sample(index)
            index += 1


class ToyDataset:
    """Map-style dataset of ``length`` samples of a :class:`ToyWorld` (usable
    with ``torch.utils.data.DataLoader``; pass a ``collate_fn``, since a
    :class:`Sample` is not a tensor). Item i is ``world.sample(offset + i, task)``."""

    def __init__(self, world: ToyWorld, length: int, task: str | None = None, offset: int = 0) -> None:
        if length < 0 or offset < 0:
            raise ValueError(f"length and offset must be >= 0, got {length}, {offset}")
        self.world, self.length, self.task, self.offset = world, length, task, offset

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Sample:
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        return self.world.sample(self.offset + (i % self.length), self.task)
