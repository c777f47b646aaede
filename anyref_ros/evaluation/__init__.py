"""Evaluation for anyref_ros: segmentation and text metrics (``metrics``,
``text_metrics``) and a picture grid of predictions (``grid``)."""

from .metrics import (
    AVSAccumulator, MetricUnavailable, ReferringAccumulator, avs_frame_iou, cider_d, exact_match,
    fscore_binary, fscore_sweep, iou, meteor, normalise_text,
)

__all__ = [
    "AVSAccumulator", "MetricUnavailable", "ReferringAccumulator", "avs_frame_iou", "cider_d", "exact_match",
    "fscore_binary", "fscore_sweep", "iou", "meteor", "normalise_text",
]
