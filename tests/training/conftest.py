"""Fixtures for the training tests: tiny models, CPU, no downloads."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from anyref_ros.model import AnyRefPipeline  # noqa: E402
from anyref_ros.training.config import DataSource, TrainConfig  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    """The tiny preset with seeded random weights, one per test module."""
    torch.manual_seed(0)
    return AnyRefPipeline.from_pretrained("tiny", device="cpu")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def tiny_config(output_dir, **changes) -> TrainConfig:
    """The built-in ``tiny`` run (30 steps, batch 4), with ``changes``."""
    values = dict(preset="tiny", steps=30, batch_size=4, lr=2e-3, warmup_steps=3, save_every=15,
                  log_every=1, output_dir=str(output_dir), threads=2,
                  sources=[DataSource(args={"size": [64, 48]})])
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture
def make_config():
    """``make_config(output_dir, **changes)`` -> the tiny ``TrainConfig``."""
    return tiny_config
