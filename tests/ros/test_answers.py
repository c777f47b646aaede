"""The Referral every answer path publishes and returns (build_referral): found,
the reason when not found, the mask kept below min_score; and the ROS-path
overhead measurement (positive numbers only: timings are benchmarks, not tests)."""

from __future__ import annotations

import numpy as np
import pytest
from anyref_ros.model.pipeline import Referral as Answer
from anyref_ros.model.prompts import NO_OBJECT_ANSWER
from anyref_ros.msg import Referral
from anyref_ros.tools.overhead import STEPS, measure_overhead
from anyref_ros.nodes.anyref.publishing import NOT_IN_VIEW, build_referral
from anyref_ros.nodes.conversions import image_to_mask
from std_msgs.msg import Header

H, W = 48, 64


def answer(score: float = 0.9, text: str = "the red circle.", present: bool = True) -> Answer:
    mask = np.zeros((H, W), bool)
    if present:
        mask[10:20, 30:45] = True
    return Answer(mask=mask, text=text, score=score, box=(30, 10, 45, 20) if present else None, found=present)


def build(ref: Answer, min_score: float = 0.0, no_object=NO_OBJECT_ANSWER) -> Referral:
    return build_referral(ref, Header(frame_id="cam"), "red circle", Referral.TYPE_TEXT, 0.25, min_score, no_object)


def test_a_mask_at_or_above_min_score_is_found():
    for min_score in (0.0, 0.5, 0.9):
        msg = build(answer(0.9), min_score)
        assert msg.found and msg.description == "the red circle"
    assert msg.header.frame_id == "cam" and msg.mask.header.frame_id == "cam"
    assert (msg.x_min, msg.y_min, msg.x_max, msg.y_max) == (30, 10, 44, 19) and msg.has_box  # inclusive
    assert msg.mask_area == 150 and msg.score == pytest.approx(0.9) and msg.latency_ms == pytest.approx(250.0)
    mask = image_to_mask(msg.mask)
    assert msg.mask.encoding == "mono8" and mask.shape == (H, W) and mask.sum() == 150
    assert set(np.unique(np.frombuffer(bytes(msg.mask.data), np.uint8))) == {0, 255}


def test_a_mask_below_min_score_is_not_found_but_kept_with_the_reason():
    msg = build(answer(0.31), min_score=0.5)
    assert not msg.found
    assert msg.description == "not found: score 0.310 < min_score 0.5; best guess: the red circle"
    assert msg.has_box and msg.mask_area == 150 and image_to_mask(msg.mask).sum() == 150
    assert msg.score == pytest.approx(0.31)


def test_an_absent_object_is_not_in_view_with_an_empty_mask():
    msg = build(answer(0.0, NO_OBJECT_ANSWER, present=False), min_score=0.5)
    assert not msg.found and msg.description == "It is not in view"
    assert not msg.has_box and msg.mask_area == 0 and msg.score == 0.0
    mask = image_to_mask(msg.mask)
    assert mask.shape == (H, W) and not mask.any()


def test_an_answer_without_a_mask_says_not_in_view_and_keeps_what_the_model_said():
    msg = build(answer(0.0, "circle.", present=False), no_object=None)  # e.g. a sound named, nothing making it
    assert not msg.found and msg.description == f"{NOT_IN_VIEW}; the model said: circle"
    assert build(answer(0.0, "", present=False), no_object=None).description == NOT_IN_VIEW


def test_a_score_that_is_not_finite_reads_zero():
    msg = build(answer(float("nan")), min_score=0.1)
    assert msg.score == 0.0 and not msg.found and msg.description.startswith("not found: score 0.000")


def test_measure_overhead_returns_positive_times():
    out = measure_overhead("tiny", repeats=1)  # the tiny preset's config: no weights are needed
    assert out["overhead_ms_720p"] == out["overhead_ms"] > 0
    assert set(out["steps_ms"]) == set(STEPS) and all(v > 0 for v in out["steps_ms"].values())
    assert out["conversion_bgr8_ms"] > 0 and out["size"] == "1280x720" and out["repeats"] == 1
    small = measure_overhead("tiny", size=(320, 240), repeats=2)
    assert "overhead_ms_720p" not in small and small["overhead_ms"] > 0 and small["size"] == "320x240"
