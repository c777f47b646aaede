"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest

from anyref_ros.evaluation import (
    AVSAccumulator, ReferringAccumulator, avs_frame_iou, cider_d, exact_match,
    fscore_binary, fscore_sweep, iou, normalise_text,
)


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_ciou_and_giou_differ():
    acc = ReferringAccumulator()
    big = _box(20, 20, 0, 10, 0, 10)  # 100 px, predicted exactly: I 100, U 100
    assert acc.add(big, big) == 1.0
    small_gt, small_pred = _box(20, 20, 15, 17, 15, 17), _box(20, 20, 17, 19, 17, 19)  # 4 px each, disjoint
    assert acc.add(small_pred, small_gt) == 0.0
    assert acc.ciou == pytest.approx(100 / 108)
    assert acc.giou == pytest.approx(0.5)
    empty = np.zeros((20, 20), dtype=bool)
    assert acc.add(empty, empty) == 1.0  # empty target, empty prediction counts 1
    assert acc.ciou == pytest.approx(100 / 108)
    assert acc.giou == pytest.approx(2 / 3)
    assert acc.summary()["count"] == 3


def test_iou_edge_cases():
    empty = np.zeros((3, 3), dtype=bool)
    assert iou(empty, empty) == 1.0
    assert iou(~empty, empty) == 0.0
    assert math.isnan(ReferringAccumulator().ciou)
    with pytest.raises(ValueError, match="shape"):
        iou(np.zeros((2, 2)), np.zeros((3, 3)))


# One video of three 1x4 frames. Frame 2 has an empty ground truth.
PROBS = np.array([[[0.9, 0.6, 0.2, 0.0]], [[0.6, 0.0, 0.0, 0.0]], [[0.7, 0.7, 0.1, 0.1]]])
GTS = np.array([[[1, 0, 1, 0]], [[0, 0, 0, 0]], [[1, 1, 1, 1]]], dtype=bool)


def test_fscore_single_frame_by_hand():
    # t = 0: P 1/2, R 1 -> 0.5652; t <= 0.2: P 2/3, R 1 -> 0.7222; t <= 0.6: P R 1/2 -> 0.5;
    # t <= 0.9: P 1, R 1/2 -> 1.3 * 0.5 / 0.8 = 0.8125; above: 0.
    assert fscore_sweep(PROBS[:1], GTS[:1]) == pytest.approx(0.8125)


def test_fscore_video_averages_curves_then_takes_max():
    # mean curve over frames 1 and 3 (frame 2 skipped); best at t in (0, 0.1]: (13/18 + 1) / 2
    assert fscore_sweep(PROBS, GTS) == pytest.approx(31 / 36)
    assert math.isnan(fscore_sweep(PROBS[1:2], GTS[1:2]))


def test_avs_iou_and_binary_fscore():
    binary = PROBS > 0.5
    assert avs_frame_iou(binary[0], GTS[0]) == pytest.approx(1 / 3)
    assert avs_frame_iou(binary[1], GTS[1]) == pytest.approx(3 / 4)  # background IoU
    assert fscore_binary(binary, GTS) == pytest.approx((0.5 + 0.8125) / 2)
    acc = AVSAccumulator()
    video = acc.add_video(PROBS, GTS)
    assert video["mIoU"] == pytest.approx(19 / 36)
    acc.add_video(PROBS[:1], GTS[:1])
    summary = acc.summary()
    assert summary["frames"] == 4 and summary["videos"] == 2
    assert summary["mIoU"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2 + 1 / 3) / 4)
    assert summary["F"] == pytest.approx((31 / 36 + 0.8125) / 2)


def test_exact_match_normalisation():
    assert normalise_text("  Red  Circle[SEG]. ") == "red circle"
    assert normalise_text("red circle<obj>.", seg_token="<obj>") == "red circle"
    assert exact_match(["Red circle[SEG].", "blue square", "green"], ["red circle", "Blue Square.", "red"]) \
        == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        exact_match(["a"], [])


def test_cider_d_by_hand():
    # "a" is in both reference sets: IDF 0. Other n-grams have df 1 of 2 documents: weight log 2.
    # Item 1 matches its reference for n = 1..3 (cosine 1) and has no 4-gram: 10 * 3/4 = 7.5.
    # Item 2 ("a red square" vs "a blue square"): unigram cosine 1/2, no other overlap: 10 * 0.5/4.
    score, per = cider_d(["a red circle", "a red square"], [["a red circle"], ["a blue square"]])
    assert per == pytest.approx([7.5, 1.25])
    assert score == pytest.approx(4.375)


def test_cider_d_length_penalty_and_errors():
    _, per = cider_d(["red circle", "blue"], [["red circle"], ["blue square"]])
    _, longer = cider_d(["red circle " + "x " * 8, "blue"], [["red circle"], ["blue square"]])
    assert longer[0] < per[0]
    with pytest.raises(ValueError):
        cider_d(["a"], [[]])


def test_rankdata_averages_ties():
    from anyref_ros.scoring.metrics import rankdata

    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_by_hand():
    from anyref_ros.scoring.metrics import spearman

    assert spearman([0.1, 0.5, 0.9], [0.2, 0.3, 0.8]) == pytest.approx(1.0)
    assert spearman([0.1, 0.5, 0.9], [0.8, 0.3, 0.2]) == pytest.approx(-1.0)
    # ranks x: 1 2 3 4, y: 2 1 4 3 -> d^2 = 1+1+1+1 = 4; rho = 1 - 6*4/(4*15) = 0.6
    assert spearman([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)
    # with a tie: x ranks 1 2.5 2.5 4, y ranks 1 2 3 4 -> Pearson of the ranks
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4.0])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    expected = (rx * ry).sum() / math.sqrt((rx**2).sum() * (ry**2).sum())
    assert spearman([0.1, 0.4, 0.4, 0.9], [1, 2, 3, 4]) == pytest.approx(expected)
    assert math.isnan(spearman([0.5], [0.5]))
    assert math.isnan(spearman([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))  # constant scores
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_found_accumulator_by_hand():
    from anyref_ros.scoring.metrics import FoundAccumulator

    acc = FoundAccumulator()
    # present referents: found, found, missed, found; absent: not found, found (false alarm), not found
    acc.add(True, True, score=0.9, iou=0.8)
    acc.add(True, True, score=0.5, iou=0.4)
    acc.add(False, True)
    acc.add(True, True, score=0.7, iou=0.9)
    acc.add(False, False)
    acc.add(True, False, score=0.3)
    acc.add(False, False)
    out = acc.summary()
    assert out["target_accuracy"] == pytest.approx(3 / 4)
    assert out["no_target_accuracy"] == pytest.approx(2 / 3)
    # scores 0.9 0.5 0.7 -> ranks 3 1 2; IoUs 0.8 0.4 0.9 -> ranks 2 1 3; d^2 = 1+0+1 -> 1 - 6*2/(3*8) = 0.5
    assert out["score_spearman"] == pytest.approx(0.5) and out["score_pairs"] == 3
    assert FoundAccumulator().summary() == {}
