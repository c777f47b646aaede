"""Evaluation for anyref_ros: segmentation and text metrics (``metrics``,
``text_metrics``; gRefCOCO's gIoU / N-acc / T-acc, found / not-found
accuracy and score-IoU rank correlation) and a picture grid of predictions (``grid``)."""

from .metrics import (
    AVSAccumulator, FoundAccumulator, GeneralisedReferringAccumulator, MetricUnavailable, ReferringAccumulator,
    avs_frame_iou, cider_d, exact_match, fscore_binary, fscore_sweep, iou, meteor, normalise_text, spearman,
)

__all__ = [
    "AVSAccumulator", "FoundAccumulator", "GeneralisedReferringAccumulator", "MetricUnavailable",
    "ReferringAccumulator", "avs_frame_iou", "cider_d", "exact_match", "fscore_binary", "fscore_sweep", "iou",
    "meteor", "normalise_text", "spearman",
]
