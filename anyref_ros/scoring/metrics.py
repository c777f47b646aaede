"""Segmentation metrics: referring segmentation (cIoU, gIoU), generalised
referring segmentation as gRefCOCO reports it (gIoU, cIoU, N-acc, T-acc:
``GeneralisedReferringAccumulator``), AVSBench (mIoU, F-score with
beta^2 = 0.3), and found / not-found accuracy with the Spearman correlation
of predicted and real IoU (``FoundAccumulator``).

All masks are H x W arrays; boolean masks are used as they are, probability
maps are floats in [0, 1]. Text metrics (exact match, CIDEr-D, METEOR) live
in :mod:`anyref_ros.scoring.text_metrics` and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from .text_metrics import MetricUnavailable, cider_d, exact_match, meteor, normalise_text

__all__ = [
    "AVSAccumulator", "FoundAccumulator", "GeneralisedReferringAccumulator", "MetricUnavailable",
    "ReferringAccumulator", "avs_frame_iou", "cider_d", "exact_match", "fscore_binary", "fscore_sweep",
    "intersection_union", "iou", "meteor", "normalise_text", "rankdata", "spearman",
]

FSCORE_BETA2 = 0.3
FSCORE_THRESHOLDS = 255
AVS_BINARY_THRESHOLD = 0.5
_EPS = 1e-10


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    return pred.astype(bool), gt.astype(bool)


def intersection_union(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int]:
    """Pixel counts (|pred & gt|, |pred | gt|) of two same-shape binary masks;
    pixels set in ``ignore`` (e.g. ReasonSeg's "ignore" regions) count in neither."""
    pred, gt = _pair(pred, gt)
    if ignore is not None:
        _, keep = _pair(pred, ignore)
        keep = ~keep
        pred, gt = pred & keep, gt & keep
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two binary masks; 1.0 when both are empty (nothing to find, nothing found)."""
    inter, union = intersection_union(pred, gt)
    return 1.0 if union == 0 else inter / union


class ReferringAccumulator:
    """Referring-segmentation scores over a set of (prediction, ground truth) pairs.

    * cIoU (cumulative IoU) = sum of intersections / sum of unions;
    * gIoU (generalised IoU) = mean of per-sample IoU, where an empty target
      with an empty prediction scores 1.
    """

    def __init__(self) -> None:
        self.intersection = 0
        self.union = 0
        self.ious: list[float] = []

    def add(self, pred_mask: np.ndarray, gt_mask: np.ndarray, ignore: np.ndarray | None = None) -> float:
        """Add one pair of same-shape binary masks (pixels in ``ignore`` left
        out); returns this sample's IoU."""
        inter, union = intersection_union(pred_mask, gt_mask, ignore)
        self.intersection += inter
        self.union += union
        score = 1.0 if union == 0 else inter / union
        self.ious.append(score)
        return score

    @property
    def count(self) -> int:
        return len(self.ious)

    @property
    def ciou(self) -> float:
        """Cumulative IoU; NaN before any sample, 1.0 if every union was empty."""
        if not self.ious:
            return float("nan")
        return 1.0 if self.union == 0 else self.intersection / self.union

    @property
    def giou(self) -> float:
        """Mean per-sample IoU; NaN before any sample."""
        return float(np.mean(self.ious)) if self.ious else float("nan")

    def summary(self) -> dict[str, float]:
        return {"cIoU": self.ciou, "gIoU": self.giou, "count": self.count}


class GeneralisedReferringAccumulator:
    """gRefCOCO scores (generalised referring expression segmentation, Liu
    et al., CVPR 2023), where a target may be empty ("no-target" expressions)
    or hold several objects:

    * gIoU: mean per-sample IoU; a no-target sample scores 1 when predicted
      empty, else 0;
    * cIoU: sum of intersections / sum of unions (a no-target sample
      predicted empty adds nothing, one predicted non-empty adds its pixels
      to the union);
    * N-acc: no-target samples predicted empty / all no-target samples;
    * T-acc: target samples predicted non-empty / all target samples.

    ``add(pred_mask, gt_mask, predicted_empty)``: ``predicted_empty`` (e.g.
    ``not Referral.found``) overrides the mask's own emptiness; a sample
    predicted empty counts as an empty mask. (ReLA's published evaluation
    code adds 1 to the N-acc denominator and computes its T_acc as
    TP / (TP + FP + 1) over no-target decisions; these are the paper's
    definitions, without the +1.)
    """

    def __init__(self) -> None:
        self.referring = ReferringAccumulator()
        self.no_target: list[bool] = []  # predicted empty, per no-target sample
        self.target: list[bool] = []  # predicted non-empty, per target sample

    def add(self, pred_mask: np.ndarray, gt_mask: np.ndarray, predicted_empty: bool | None = None) -> float:
        """Add one sample; returns its IoU under the empty-target convention."""
        pred, gt = _pair(pred_mask, gt_mask)
        empty = (not pred.any()) if predicted_empty is None else bool(predicted_empty)
        if empty:
            pred = np.zeros_like(gt)
        if gt.any():
            self.target.append(not empty)
        else:
            self.no_target.append(empty)
        return self.referring.add(pred, gt)

    @property
    def count(self) -> int:
        return self.referring.count

    def summary(self) -> dict[str, float]:
        def rate(xs: list[bool]) -> float:
            return float(np.mean(xs)) if xs else float("nan")
        return {"gIoU": self.referring.giou, "cIoU": self.referring.ciou, "N-acc": rate(self.no_target),
                "T-acc": rate(self.target), "count": self.count, "no_target_count": len(self.no_target),
                "target_count": len(self.target)}


def avs_frame_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """AVSBench per-frame IoU of binary masks. A frame whose ground truth is
    empty scores the background IoU: correctly empty pixels / all pixels."""
    pred, gt = _pair(pred, gt)
    if not gt.any():
        return float(np.count_nonzero(~pred)) / gt.size
    return np.count_nonzero(pred & gt) / np.count_nonzero(pred | gt)


def _thresholds(num: int) -> np.ndarray:
    return np.linspace(0.0, 1.0 - _EPS, num)


def _fscore(tp: np.ndarray, pred_pos: np.ndarray, gt_pos: float, beta2: float) -> np.ndarray:
    precision = tp / (pred_pos + _EPS)
    recall = tp / (gt_pos + _EPS)
    denom = beta2 * precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (1 + beta2) * precision * recall / denom
    return np.nan_to_num(f, nan=0.0)


def fscore_sweep(
    probs: np.ndarray, gts: np.ndarray, beta2: float = FSCORE_BETA2, num_thresholds: int = FSCORE_THRESHOLDS,
) -> float:
    """AVSBench F-score of one video.

    ``probs``: T x H x W probabilities; ``gts``: T x H x W binary masks.
    For each of ``num_thresholds`` thresholds t evenly spaced over [0, 1)
    (prediction = prob >= t), compute per frame precision, recall and
    F = (1 + b2) P R / (b2 P + R); average F over the frames whose ground
    truth is not empty; return the maximum over thresholds. A video with no
    non-empty frame returns NaN (it has nothing to score).
    """
    probs, gts = np.asarray(probs, dtype=np.float64), np.asarray(gts).astype(bool)
    if probs.shape != gts.shape or probs.ndim != 3:
        raise ValueError(f"expected T x H x W probabilities and masks of one shape, got {probs.shape}, {gts.shape}")
    thr = _thresholds(num_thresholds)
    curves = []
    for p, g in zip(probs, gts):
        if not g.any():
            continue
        # counts of pixels >= t: via sorted probabilities
        all_sorted = np.sort(p.ravel())
        pos_sorted = np.sort(p[g])
        pred_pos = all_sorted.size - np.searchsorted(all_sorted, thr, side="left")
        tp = pos_sorted.size - np.searchsorted(pos_sorted, thr, side="left")
        curves.append(_fscore(tp.astype(np.float64), pred_pos.astype(np.float64), float(g.sum()), beta2))
    if not curves:
        return float("nan")
    return float(np.mean(curves, axis=0).max())


def fscore_binary(preds: np.ndarray, gts: np.ndarray, beta2: float = FSCORE_BETA2) -> float:
    """F-score of one video from binary masks (T x H x W each): per-frame F
    with ``beta2``, averaged over frames with non-empty ground truth (NaN if none)."""
    preds, gts = _pair(preds, gts)
    scores = [
        float(_fscore(np.array([np.count_nonzero(p & g)], float), np.array([np.count_nonzero(p)], float),
                      float(g.sum()), beta2)[0])
        for p, g in zip(preds, gts) if g.any()
    ]
    return float(np.mean(scores)) if scores else float("nan")


class AVSAccumulator:
    """AVSBench scores over videos.

    ``add_video(probs, gts)`` takes T x H x W sigmoid probabilities (resize
    them to the ground-truth size first) and binary ground truth. Reported:

    * ``mIoU``: mean over all frames of :func:`avs_frame_iou` at prob > 0.5;
    * ``F``: mean over videos of :func:`fscore_sweep` (videos without any
      non-empty frame are left out);
    * ``F_binary``: mean over videos of :func:`fscore_binary` at prob > 0.5.
    """

    def __init__(self, threshold: float = AVS_BINARY_THRESHOLD, beta2: float = FSCORE_BETA2) -> None:
        self.threshold = threshold
        self.beta2 = beta2
        self.frame_ious: list[float] = []
        self.video_f: list[float] = []
        self.video_f_binary: list[float] = []

    def add_video(self, probs: np.ndarray, gts: np.ndarray) -> dict[str, float]:
        """Add one video; returns its own mIoU, F and F_binary."""
        probs = np.asarray(probs, dtype=np.float64)
        gts = np.asarray(gts).astype(bool)
        if probs.ndim == 2:
            probs, gts = probs[None], gts[None]
        binary = probs > self.threshold
        ious = [avs_frame_iou(b, g) for b, g in zip(binary, gts)]
        f = fscore_sweep(probs, gts, self.beta2)
        fb = fscore_binary(binary, gts, self.beta2)
        self.frame_ious.extend(ious)
        if not np.isnan(f):
            self.video_f.append(f)
            self.video_f_binary.append(fb)
        return {"mIoU": float(np.mean(ious)), "F": f, "F_binary": fb}

    def summary(self) -> dict[str, float]:
        def mean(xs: list[float]) -> float:
            return float(np.mean(xs)) if xs else float("nan")
        return {"mIoU": mean(self.frame_ious), "F": mean(self.video_f), "F_binary": mean(self.video_f_binary),
                "frames": len(self.frame_ious), "videos": len(self.video_f)}


def rankdata(values) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their average rank."""
    x = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson correlation of the tie-averaged
    ranks); NaN with fewer than 2 pairs or when either side is constant."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: expected two sequences of one length, got {x.size} and {y.size}")
    if x.size < 2:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float("nan") if denom == 0 else float((rx * ry).sum() / denom)


class FoundAccumulator:
    """Whether the model finds what is there and only that, and whether its
    score ranks its masks like their real IoU.

    ``add(found, present, score, iou)`` per query: ``present`` whether the
    referent is in the scene, ``found`` whether the model returned a mask,
    ``score`` its predicted IoU and ``iou`` the real one (used when both
    ``present`` and ``found``). Reported:

    * ``target_accuracy``: found / present queries (NaN without any);
    * ``no_target_accuracy``: not found / absent queries (NaN without any);
    * ``score_spearman``: Spearman correlation of score and real IoU over
      the found present queries; ``score_pairs`` their number.
    """

    def __init__(self) -> None:
        self.present_found: list[bool] = []
        self.absent_found: list[bool] = []
        self.scores: list[float] = []
        self.ious: list[float] = []

    def add(self, found: bool, present: bool, score: float = 0.0, iou: float = 0.0) -> None:
        if present:
            self.present_found.append(bool(found))
            if found:
                self.scores.append(float(score))
                self.ious.append(float(iou))
        else:
            self.absent_found.append(bool(found))

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.present_found:
            out["target_accuracy"] = float(np.mean(self.present_found))
        if self.absent_found:
            out["no_target_accuracy"] = float(1.0 - np.mean(self.absent_found))
        if self.scores:
            out["score_spearman"] = spearman(self.scores, self.ious)
            out["score_pairs"] = len(self.scores)
        return out
