"""gRefCOCO's metrics (gIoU with the empty-target convention, cIoU, N-acc,
T-acc) by hand, ReasonSeg's ignore regions, and ``anyref-eval`` on the
committed gRefCOCO and ReasonSeg fixtures."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from anyref_ros.data.readers import GRefCocoDataset, ReasonSegDataset
from anyref_ros.evaluation import GeneralisedReferringAccumulator, ReferringAccumulator
from anyref_ros.evaluation.cli import main
from anyref_ros.scoring.runner import evaluate

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GREF_ARGS = {"dataset_dir": str(FIXTURES / "grefcoco"), "image_root": str(FIXTURES / "coco"), "split": "val"}
REASONSEG_ARGS = {"root": str(FIXTURES / "reasonseg"), "split": "val"}


def box(y0, y1, x0, x1, shape=(4, 4)):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


EMPTY = np.zeros((4, 4), dtype=bool)


def test_gres_metrics_by_hand():
    acc = GeneralisedReferringAccumulator()
    assert acc.add(box(0, 2, 0, 2), box(0, 2, 0, 4)) == pytest.approx(0.5)  # target, I 4 U 8
    assert acc.add(EMPTY, box(0, 1, 0, 1)) == 0.0  # target missed: I 0 U 1
    assert acc.add(EMPTY, EMPTY) == 1.0  # no-target, rightly empty: adds nothing to cIoU
    assert acc.add(box(0, 1, 0, 2), EMPTY) == 0.0  # no-target, wrongly found: I 0 U 2
    # a mask given with "not found" counts as empty
    assert acc.add(box(0, 4, 0, 4), EMPTY, predicted_empty=True) == 1.0
    s = acc.summary()
    assert s["gIoU"] == pytest.approx((0.5 + 0 + 1 + 0 + 1) / 5)
    assert s["cIoU"] == pytest.approx(4 / (8 + 1 + 2))
    assert s["N-acc"] == pytest.approx(2 / 3) and s["T-acc"] == pytest.approx(1 / 2)
    assert (s["count"], s["no_target_count"], s["target_count"]) == (5, 3, 2)
    assert math.isnan(GeneralisedReferringAccumulator().summary()["N-acc"])


def test_ignore_pixels_count_in_no_iou():
    acc = ReferringAccumulator()
    ignore = box(0, 4, 2, 4)
    # prediction spills into the ignored right half only: a perfect score
    assert acc.add(box(0, 2, 0, 4), box(0, 2, 0, 2), ignore) == 1.0
    assert acc.add(box(0, 2, 0, 4), box(0, 2, 0, 2)) == 0.5
    assert acc.intersection == 8 and acc.union == 12


class Oracle:
    """A stand-in for the model in metric-wiring tests: answers every query
    with the sample's own target ("perfect") or nothing ("empty")."""

    def __init__(self, samples, quality="perfect"):
        self.by_image = {id(s.image): s for s in samples}
        self.quality = quality

    def segment(self, image, text=None, **_):
        s = self.by_image[id(image)]
        mask = s.mask if self.quality == "perfect" else np.zeros_like(s.mask)
        return type("R", (), {"mask": mask, "text": "", "answer": "", "found": bool(mask.any()), "score": 0.5})()


def test_gres_scores_through_the_runner():
    ds = GRefCocoDataset(**GREF_ARGS)
    samples = [ds[i] for i in range(len(ds))]
    perfect = evaluate(Oracle(samples), samples)["tasks"]["text"]
    assert (perfect["gIoU"], perfect["cIoU"], perfect["N-acc"], perfect["T-acc"]) == (1.0, 1.0, 1.0, 1.0)
    empty = evaluate(Oracle(samples, "empty"), samples)["tasks"]["text"]
    assert empty["gIoU"] == pytest.approx(1 / 5) and empty["cIoU"] == 0.0
    assert empty["N-acc"] == 1.0 and empty["T-acc"] == 0.0
    assert empty["no_target_accuracy"] == 1.0 and empty["target_accuracy"] == 0.0


def test_reasonseg_ignore_region_through_the_runner():
    ds = ReasonSegDataset(**REASONSEG_ARGS)
    samples = [ds[i] for i in range(len(ds))]
    for s in samples:  # the oracle also paints the ignored pixels: no penalty
        if s.metadata["ignore_mask"] is not None:
            s.masks = [s.mask | s.metadata["ignore_mask"]]
    scores = evaluate(Oracle(samples), samples)["tasks"]["text"]
    assert scores["cIoU"] == 1.0 and scores["gIoU"] == 1.0 and "N-acc" not in scores


@pytest.mark.parametrize("source, args, count", [("grefcoco", GREF_ARGS, 5), ("reasonseg", REASONSEG_ARGS, 2)])
def test_anyref_eval_runs_on_the_readers(tmp_path, capsys, source, args, count):
    out = tmp_path / "report.json"
    assert main(["--preset", "tiny", "--source", source, "--source-args", json.dumps(args), "--scenes", "0",
                 "--output", str(out), "--threads", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["source"] == source and report["samples"] == count
    text = report["tasks"]["text"]
    assert {"gIoU", "cIoU"} <= set(text)
    if source == "grefcoco":
        assert {"N-acc", "T-acc"} <= set(text) and text["count"] == 5
    assert "text:" in capsys.readouterr().out
