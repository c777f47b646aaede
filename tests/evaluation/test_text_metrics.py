"""CIDEr-D and METEOR through pycocoevalcap (the COCO caption evaluation's
own scorers), and our CIDEr-D fallback agreeing with it."""

import shutil

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from anyref_ros.scoring.text_metrics import (
    NO_JAVA_NOTE, MetricUnavailable, cider_backend, cider_d, cider_d_ours, meteor, tokenize,
)

CANDIDATES = ["A red circle.", "the blue square on the left", "green triangle", "a big Red circle, top right",
              "small square"]
REFERENCES = [["a red circle"], ["the blue square at left", "blue square"], ["the green triangle"],
              ["red circle on the right", "a big red circle"], ["a small grey square", "tiny square"]]


def test_cider_d_is_pycocoevalcaps_and_ours_agrees():
    assert cider_backend() == "pycocoevalcap"
    score, per = cider_d(CANDIDATES, REFERENCES)
    # pycocoevalcap called by hand, on the same tokens
    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(REFERENCES)}
    res = {i: [" ".join(tokenize(c))] for i, c in enumerate(CANDIDATES)}
    expected, expected_per = Cider().compute_score(gts, res)
    assert score == pytest.approx(expected, abs=1e-12) and per == pytest.approx(list(expected_per), abs=1e-12)
    ours, ours_per = cider_d_ours(CANDIDATES, REFERENCES)
    assert ours == pytest.approx(score, rel=1e-9) and ours_per == pytest.approx(per, rel=1e-9, abs=1e-12)
    assert cider_d(CANDIDATES, REFERENCES, backend="anyref_ros") == (ours, ours_per)
    assert 0 < score < 10 and per[0] > per[4]


def test_cider_d_agrees_on_random_captions():
    rng = np.random.default_rng(0)
    words = "a the red blue green circle square triangle left right big small on of".split()

    def sentence(lo):
        return " ".join(rng.choice(words, size=int(rng.integers(lo, 9))))

    cands = [sentence(1) for _ in range(20)]
    refs = [[sentence(2) for _ in range(int(rng.integers(1, 4)))] for _ in range(20)]
    a, a_per = cider_d(cands, refs, backend="pycocoevalcap")
    b, b_per = cider_d(cands, refs, backend="anyref_ros")
    assert a == pytest.approx(b, rel=1e-9) and a_per == pytest.approx(b_per, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="backend"):
        cider_d(cands, refs, backend="nltk")


@pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime: make setup JAVA=1 installs one")
def test_meteor_by_pycocoevalcap_with_java():
    score, per = meteor(["a red circle", "the blue square on the left"],
                        [["A red circle."], ["a blue square at left", "blue box"]])
    assert per[0] == pytest.approx(1.0) and 0.0 < per[1] < 1.0
    assert score == pytest.approx(0.457, abs=0.01)  # METEOR 1.5 pools its statistics, not the mean of per


def test_meteor_without_java_says_it_was_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no java on it
    with pytest.raises(MetricUnavailable) as info:
        meteor(["a red circle"], [["a red circle"]])
    assert str(info.value) == NO_JAVA_NOTE == "METEOR skipped: no Java runtime (make setup JAVA=1)"


def test_report_says_meteor_was_skipped_without_java(tmp_path, monkeypatch):
    from anyref_ros.data import ToyWorld
    from anyref_ros.scoring.runner import Prediction, TaskScores

    sample = ToyWorld(0, size=(64, 48)).sample(3, "region")
    scores = TaskScores()
    scores.add("region", sample, Prediction(mask=sample.mask, text=sample.description, answer=""))
    monkeypatch.setenv("PATH", str(tmp_path))
    summary = scores.summary("region")
    assert summary["METEOR"] is None and summary["METEOR_note"] == NO_JAVA_NOTE
    assert summary["CIDEr-D_backend"] == "pycocoevalcap" and summary["exact_match"] == 1.0
