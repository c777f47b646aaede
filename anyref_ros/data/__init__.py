"""Data for anyref_ros: the shared :class:`Sample` type, the procedural toy
world (``toy``, ``toy_render``, ``toy_audio``) and readers for the public
datasets AnyRef trains on (``anyref_ros.data.readers``)."""

from .sample import ANSWER_TEMPLATE, SEG_TOKEN, TASKS, Sample, format_answer
from .toy import EVAL_SEED, TRAIN_SEED_BASE, ToyDataset, ToyWorld, train_seed
from .toy_render import ToyObject, make_scene, place_objects, render_exemplar, render_scene

__all__ = [
    "ANSWER_TEMPLATE", "EVAL_SEED", "SEG_TOKEN", "TASKS", "TRAIN_SEED_BASE", "Sample", "ToyDataset",
    "ToyObject", "ToyWorld", "format_answer", "make_scene", "place_objects", "render_exemplar", "render_scene",
    "train_seed",
]
