"""Evaluation for anyref_ros: the ``anyref-eval`` tool (``cli``) and a
picture grid of predictions (``grid``).  The metrics (gRefCOCO's gIoU /
N-acc / T-acc, found / not-found accuracy, score-IoU rank correlation, text
metrics) and the runner live one floor down in ``anyref_ros.scoring``,
shared with training; they are re-exported here."""

from ..scoring.metrics import (
    AVSAccumulator, FoundAccumulator, GeneralisedReferringAccumulator, MetricUnavailable, ReferringAccumulator,
    avs_frame_iou, cider_d, exact_match, fscore_binary, fscore_sweep, iou, meteor, normalise_text, spearman,
)

__all__ = [
    "AVSAccumulator", "FoundAccumulator", "GeneralisedReferringAccumulator", "MetricUnavailable",
    "ReferringAccumulator", "avs_frame_iou", "cider_d", "exact_match", "fscore_binary", "fscore_sweep", "iou",
    "meteor", "normalise_text", "spearman",
]
