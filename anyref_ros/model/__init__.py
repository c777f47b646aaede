"""AnyRef model core: config, presets, network, pre-processing, loading, pipeline.

Public API::

    from anyref_ros.model import AnyRefPipeline, Referral
    pipe = AnyRefPipeline.from_pretrained("tiny")   # or a checkpoint folder
    referral = pipe.segment(rgb, text="the red cup")
    referral.mask, referral.text, referral.score, referral.box

No ROS imports here.  Heavy modules (torch, transformers, ...) load on first
use of the pipeline, so ``import anyref_ros.model`` is cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import AnyRefConfig
from .presets import get_preset, preset_names, register_preset

# peft imports bitsandbytes when it is installed; on CPUs with AVX-512 BF16 that
# logs a warning at import about an optional kernel package fetched from the
# Hugging Face hub ("kernels"). bitsandbytes then uses its own CPU code, and
# nothing is fetched here, so the warning is noise in every log.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import AnyRefPipeline, ImageFeatures, Referral

__all__ = ["AnyRefPipeline", "Referral", "ImageFeatures", "AnyRefConfig",
           "get_preset", "preset_names", "register_preset"]


def __getattr__(name: str):
    if name in ("AnyRefPipeline", "Referral", "ImageFeatures"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
