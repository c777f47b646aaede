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

Options that add draws only when used (so ``ToyWorld(seed)`` with the
defaults gives exactly the samples it always gave):

* ``absent_rate`` > 0 (or ``sample(..., absent=True)``): a text sample is,
  with that probability (drawn after step 5), an *absent-object* query: an
  expression naming nothing in the scene (a "{colour} {shape}" pair not in
  the scene, a shape no object has, or a colour no object has; the kind
  drawn uniformly among those possible, then the expression), answered with
  ``absent_answer`` (no ``[SEG]``), with no mask (``masks == []``),
  ``description`` None and ``metadata["absent"] = True``.
* ``sound_layout`` (see :mod:`~anyref_ros.data.toy_audio`): None / "onset"
  gives the onset-aligned clips; "train", "offset", a mapping of
  ``SoundLayout`` fields or a ``SoundLayout`` give windowed clips (room
  noise lead-in, sound of 0.8-2 s, sometimes a late start), with
  ``metadata["sound"]`` = onset, duration, hum.

Held-out protocol: training uses seeds ``>= TRAIN_SEED_BASE`` (1000, 1001,
... e.g. one per run or worker); evaluation uses ``EVAL_SEED`` (0), which
no training run may use. Evaluation sets are indices ``0..N-1`` of
``ToyWorld(EVAL_SEED)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Union

import numpy as np

from .sample import SEG_TOKEN, TASKS, Sample, format_answer

#: The no-object reply (the model's ``prompts.NO_OBJECT_ANSWER``, repeated
#: here so the data package stays free of the model package).
NO_OBJECT_ANSWER = "It is not in view."
from .toy_audio import SAMPLE_RATE, SoundLayout, get_layout, shape_sound, windowed_sound
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


def absent_expression(rng: np.random.Generator, objects: list[ToyObject]) -> str:
    """An expression that names nothing among ``objects``: the kind
    ("{colour} {shape}" pair, "{shape}", "{colour} object") drawn uniformly
    among the kinds possible in this scene, then the expression uniformly."""
    pairs = {(o.colour, o.shape) for o in objects}
    kinds = [[f"{c} {s}" for c, s in _PAIRS if (c, s) not in pairs],
             [s for s in SHAPES if all(o.shape != s for o in objects)],
             [f"{c} object" for c in COLOURS if all(o.colour != c for o in objects)]]
    kinds = [k for k in kinds if k]
    options = kinds[int(rng.integers(len(kinds)))]
    return options[int(rng.integers(len(options)))]


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
        absent_rate: probability that a text sample asks for an object
            that is not in the scene (module docstring); default 0.
        absent_answer: the answer of such a query (the model's no-object
            reply, ``anyref_ros.model.prompts.NO_OBJECT_ANSWER``).
        sound_layout: where the sound sits in its clip: None or "onset"
            (onset-aligned, the default), "train", "offset", a mapping of
            ``SoundLayout`` fields or a ``SoundLayout``.
    """

    def __init__(
        self,
        seed: int,
        size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        task_weights: Mapping[str, float] | None = None,
        size_range: tuple[int, int] | None = None,
        audio_seconds: float = 2.0,
        seg_token: str = SEG_TOKEN,
        absent_rate: float = 0.0,
        absent_answer: str = NO_OBJECT_ANSWER,
        sound_layout: Union[None, str, Mapping, SoundLayout] = None,
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
        if not 0.0 <= absent_rate <= 1.0:
            raise ValueError(f"absent_rate must be in [0, 1], got {absent_rate}")
        if not isinstance(absent_answer, str) or not absent_answer.strip() or seg_token in absent_answer:
            raise ValueError(f"absent_answer must be a non-empty reply without {seg_token}, got {absent_answer!r}")
        self.absent_rate = float(absent_rate)
        self.absent_answer = absent_answer
        self.sound_layout = get_layout(dict(sound_layout) if isinstance(sound_layout, Mapping)
                                       else sound_layout)

    def sample(self, index: int, task: str | None = None, absent: bool | None = None) -> Sample:
        """Return sample ``index`` (>= 0); ``task`` overrides the drawn task;
        ``absent`` (text samples) forces an absent-object query (True) or a
        normal one (False) instead of drawing with ``absent_rate``."""
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
            if absent is None:
                absent = self.absent_rate > 0 and bool(rng.uniform() < self.absent_rate)
            if absent:
                query = absent_expression(rng, objects)
                fields.update(masks=[])
                fields["metadata"].update(absent=True, target=None)
                return Sample(query=query, description=None, answer=self.absent_answer, **fields)
            forms = text_expressions(obj, objects)
            query = forms[int(rng.integers(len(forms)))]
            return Sample(query=query, description=query, answer=self._answer(query), **fields)
        if task == "audio":
            if self.sound_layout is None:
                audio = shape_sound(rng, obj.shape, self.audio_seconds, SAMPLE_RATE)
            else:
                audio, facts = windowed_sound(rng, obj.shape, self.sound_layout, self.audio_seconds,
                                              SAMPLE_RATE)
                fields["metadata"]["sound"] = facts
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
