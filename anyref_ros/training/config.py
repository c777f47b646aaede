"""Training configuration: one dataclass, read from YAML or JSON.

    preset: toy                 # or a checkpoint folder (fine-tuning)
    init_from: model/toy        # optional warm start (weights copied into the preset's model)
    model_overrides: {sam: {encoder_depth: 4}}   # merged into the model config
    sources:                    # mixed-task batches, sampled by weight
      - {kind: toy, weight: 1.0, args: {task_weights: {text: 1, exemplar: 1, audio: 1, region: 1}}}
    steps: 6000
    batch_size: 16
    grad_accum: 1
    lr: 1.0e-3
    ...

``TrainConfig.load(path)`` reads a file; ``default_config(name)`` gives the
built-in ones (``toy``, ``tiny``, ``anyref-7b``).  Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..data.sample import TASKS
from ..model.config import read_mapping

CONFIG_DIR = Path(__file__).parent / "configs"
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("no", "fp16", "bf16")
TRAINABLE = ("auto", "all", "paper")


@dataclass
class DataSource:
    """One data source of the mix.

    ``kind``: ``toy`` (args: ``ToyWorld`` keyword arguments except the seed),
    ``refer`` (``ReferDataset``: dataset_dir, image_root, split, ...),
    ``coco`` (``CocoSegmentation``), ``coco_exemplar`` (``CocoExemplars``),
    ``ade20k`` (``ADE20KDataset``), ``avsbench`` (``AVSBenchDataset``),
    ``grefcoco`` (``GRefCocoDataset``), ``reasonseg`` (``ReasonSegDataset``).
    ``weight``: relative sampling ratio of this source in a batch.
    """

    kind: str = "toy"
    weight: float = 1.0
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class CurriculumStage:
    """Toy world only: until ``until_step``, keep scenes with at most
    ``max_objects`` objects (others are skipped)."""

    until_step: int = 0
    max_objects: int = 4


@dataclass
class LossWeights:
    lm: float = 1.0
    bce: float = 2.0
    dice: float = 0.5
    iou: float = 1.0  # MSE of SAM's IoU head against the real IoU (as SAM trains it)
    # the same error on log(1 - IoU + 0.01) (forward.iou_log_error): ranks the
    # good masks (IoU 0.95-1.0) that the MSE cannot tell apart
    iou_log: float = 0.03


@dataclass
class TrainConfig:
    preset: str = "toy"
    # a checkpoint folder whose weights start this run (warm start): every
    # parameter of the same name and shape is copied, embedding/LM-head rows
    # by token string (new tokens keep their fresh initialisation); the
    # model itself (and tokenizer) comes from ``preset`` + ``model_overrides``
    init_from: Optional[str] = None
    model_overrides: Dict[str, Any] = field(default_factory=dict)
    sources: List[DataSource] = field(default_factory=lambda: [DataSource()])
    curriculum: List[CurriculumStage] = field(default_factory=list)
    trainable: str = "auto"  # auto: "all" for from-scratch presets, else "paper"
    # non-empty: of the ``trainable`` set, only parameters under these module
    # prefixes train (e.g. [sam.mask_decoder.iou_prediction_head]: an IoU-head
    # stage that leaves every mask and answer as it was)
    train_only: List[str] = field(default_factory=list)
    steps: int = 6000  # optimizer steps
    batch_size: int = 16  # per process and micro-step
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05
    clip_grad: float = 1.0
    loss: LossWeights = field(default_factory=LossWeights)
    mixed_precision: str = "bf16"  # CUDA only; CPU always trains in float32
    model_dtype: str = "float32"  # frozen weights' dtype; trained ones are kept in float32
    gradient_checkpointing: bool = False  # language model only
    seed: int = 0  # k of data.train_seed(k) (toy data) and of torch's RNG
    threads: int = 0  # torch CPU threads (0: leave torch's default)
    output_dir: str = "runs/toy"
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    time_limit_minutes: float = 0.0  # >0: stop (and save) after this wall time
    validate_every: int = 0  # >0: quick validation on train_seed(validation_seed_k)
    validate_scenes: int = 32
    num_workers: int = 0  # DataLoader worker processes

    # ----------------------------------------------------------------- IO
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"training config: unknown keys {sorted(unknown)}")
        if "sources" in data:
            data["sources"] = [_build(DataSource, s, "sources") for s in data["sources"]]
        if "curriculum" in data:
            data["curriculum"] = [_build(CurriculumStage, s, "curriculum") for s in data["curriculum"]]
        if "loss" in data:
            data["loss"] = _build(LossWeights, data["loss"], "loss")
        config = cls(**data)
        config.check()
        return config

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_mapping(Path(path)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def check(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision: expected one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable: expected one of {TRAINABLE}, got {self.trainable!r}")
        if not self.sources or any(s.weight < 0 for s in self.sources) \
                or sum(s.weight for s in self.sources) <= 0:
            raise ValueError("sources: expected at least one source with a positive weight")
        for s in self.sources:
            weights = s.args.get("task_weights", {})
            if set(weights) - set(TASKS):
                raise ValueError(f"sources: unknown tasks in task_weights {sorted(weights)}")
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")


def _build(cls, data: Any, where: str):
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    return cls(**data)


#: The toy data mix of the committed ``model/toy`` run: absent-object text
#: queries and detector-window sound clips (``ToyWorld`` arguments).
TOY_MIX = {"task_weights": {"text": 2.0, "exemplar": 0.6, "audio": 1.0, "region": 0.5},
           "absent_rate": 0.3, "sound_layout": "train"}


def default_config(name: str) -> TrainConfig:
    """Built-in training configs: ``toy`` (the committed checkpoint's run,
    also ``configs/toy.yaml``: a warm start from the previous ``model/toy``
    with absent-object queries, windowed sounds and the IoU-head loss), ``tiny`` (smoke tests) and the YAML files in
    ``configs/`` (``anyref-7b``: the paper's recipe)."""
    if name == "toy":
        return TrainConfig(init_from="model/toy", sources=[DataSource(args=dict(TOY_MIX))], seed=1,
                           batch_size=8, lr=5e-4, warmup_steps=50, schedule="cosine",
                           loss=LossWeights(lm=1.0, bce=2.0, dice=1.0, iou=1.0, iou_log=0.03), steps=100000,
                           time_limit_minutes=65.0, save_every=500, validate_every=500,
                           validate_scenes=48, threads=1, log_every=50)
    if name == "tiny":
        return TrainConfig(preset="tiny", steps=30, batch_size=4, lr=2e-3, warmup_steps=3,
                           save_every=15, log_every=5, output_dir="runs/tiny",
                           sources=[DataSource(args={"size": [64, 48]})])
    packaged = CONFIG_DIR / f"{name}.yaml"
    if packaged.is_file():  # e.g. anyref-7b: the paper's recipe (edit the data/weight paths)
        return TrainConfig.load(packaged)
    known = ["toy", "tiny"] + sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "toy")
    raise KeyError(f"no built-in training config {name!r}; known: {', '.join(known)}")
