"""anyref-eval: metric wiring, the CLI's JSON and grid, and the committed toy checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyref_ros.data import EVAL_SEED, ToyWorld
from anyref_ros.evaluation.cli import TOY_TASK_ORDER, main, run, toy_sample_count, toy_samples
from anyref_ros.scoring.runner import TaskScores, evaluate, inclusive_to_exclusive, predict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOY_CHECKPOINT = Path(__file__).resolve().parents[2] / "model" / "toy"
# Held-out thresholds for the first 50 scenes (plus their 13 absent-object
# queries and 12 windowed sounds), a little under what the committed
# checkpoint measures there (model/toy/README.md: text cIoU 0.777, exemplar
# 0.989, sound mIoU 0.989 onset-aligned and windowed, region exact match 1.0,
# no-target 1.0, target 1.0, score Spearman 0.43 over 62 pairs).
TOY_THRESHOLDS = {("text", "cIoU"): 0.75, ("exemplar", "cIoU"): 0.90,
                  ("audio", "mIoU"): 0.90, ("audio_offset", "mIoU"): 0.90,
                  ("audio_offset", "exact_match"): 0.90, ("region", "exact_match"): 0.90,
                  ("text_absent", "no_target_accuracy"): 0.80,
                  # issue 16's targets: the sounding one of two alike objects, out-of-view sounds reported
                  ("direction_alike", "right_object"): 0.90,
                  ("direction_out_of_view", "out_of_view_reported"): 0.95}
TOY_OVERALL = {"target_accuracy": 0.95, "score_spearman": 0.30}


class Oracle:
    """A stand-in pipeline answering from the samples themselves: the ground
    truth (``quality`` "perfect"), nothing ("empty"), or the right mask
    with a wrong description ("wrong_words")."""

    def __init__(self, samples, quality="perfect"):
        self.by_image = {id(s.image): s for s in samples}
        self.quality = quality
        self.calls = []

    def _reply(self, image, kind, **kwargs):
        sample = self.by_image.get(id(image))
        if sample is None:  # a crop of a scene (re-asked around a sound's direction): nothing there
            self.calls.append((kind, "crop", kwargs))
            return type("R", (), {"mask": np.zeros(image.shape[:2], bool), "text": "", "answer": ""})()
        self.calls.append((kind, sample.task, kwargs))
        mask = sample.mask if self.quality != "empty" else np.zeros_like(sample.mask)
        text = sample.description or ""
        if self.quality == "wrong_words":
            text = "purple blob"
        return type("R", (), {"mask": mask, "text": text, "answer": text + "[SEG]."})()

    def segment(self, image, **kwargs):
        return self._reply(image, "segment", **kwargs)

    def describe(self, image, box):
        return self._reply(image, "describe", box=box)


@pytest.fixture(scope="module")
def samples():
    return list(toy_samples(8, (64, 48)))


EXTRA = {"text_absent", "audio_offset", "direction_alike", "direction_out_of_view"}


def test_toy_samples_are_held_out_and_cycle_tasks(samples):
    assert [s.task for s in samples[:8]] == list(TOY_TASK_ORDER) * 2
    assert all(s.metadata["seed"] == EVAL_SEED for s in samples)
    # then the text scenes with absent-object queries, the audio scenes with windowed clips
    extra = samples[8:]
    assert [s.metadata["eval_group"] for s in extra] == (["text_absent"] * 2 + ["audio_offset"] * 2
                                                         + ["direction_alike"] * 2 + ["direction_out_of_view"] * 2)
    assert [s.metadata["index"] for s in extra] == [0, 4, 2, 6, 0, 1, 0, 1]
    for s in extra[4:]:  # microphone-array sounds: one channel per microphone
        assert s.audio.shape[1] == len(s.metadata["array"]["mic_positions"])
    for s in extra[:2]:
        assert s.metadata["absent"] and s.masks == [] and "[SEG]" not in s.answer
        assert np.array_equal(s.image, samples[s.metadata["index"]].image)
    for s in extra[2:4]:
        assert 0.0 <= s.metadata["sound"]["onset"] <= 0.5
        assert s.description == samples[s.metadata["index"]].description
    assert toy_sample_count(8) == 16 and toy_sample_count(8, extra=False) == 8
    assert len(list(toy_samples(8, (64, 48), extra=False))) == 8


def test_perfect_predictions_score_one(samples):
    oracle = Oracle(samples)
    result = evaluate(oracle, samples, grid_per_task=1)
    tasks = result["tasks"]
    assert set(tasks) == set(TOY_TASK_ORDER) | EXTRA
    for task, scores in tasks.items():
        assert scores["cIoU"] == 1.0 and scores["gIoU"] == 1.0 and scores["count"] == 2
    assert tasks["audio"]["mIoU"] == 1.0 and tasks["audio"]["F"] == pytest.approx(1.0)
    assert tasks["audio_offset"]["mIoU"] == 1.0
    for task in ("exemplar", "audio", "region", "audio_offset"):
        assert tasks[task]["exact_match"] == 1.0
    assert sum(v["count"] for v in tasks["audio_offset"]["exact_match_by_lead_in"].values()) == 2
    assert "exact_match" not in tasks["text"] and "exact_match" not in tasks["text_absent"]
    assert tasks["region"]["CIDEr-D"] > 0 and "METEOR" in tasks["region"]
    assert len(result["grid"]) == 8
    # the sound's direction picks the sounding one of two alike objects and reports out-of-view sounds
    alike, away = tasks["direction_alike"], tasks["direction_out_of_view"]
    assert alike["right_object"] == 1.0 and alike["direction_error_median_deg"] < 5.0
    assert away["out_of_view_reported"] == 1.0 and away["no_target_accuracy"] == 1.0
    # found what is there, and nothing where nothing is
    assert tasks["text"]["target_accuracy"] == 1.0 and tasks["text_absent"]["no_target_accuracy"] == 1.0
    assert result["overall"]["target_accuracy"] == 1.0 and result["overall"]["no_target_accuracy"] == 1.0
    # the queries a node user would issue
    kinds = {task: (kind, sorted(kw)) for kind, task, kw in oracle.calls}
    assert kinds["text"] == ("segment", ["text"])
    assert kinds["exemplar"] == ("segment", ["exemplar", "exemplar_mask"])
    assert kinds["audio"] == ("segment", ["audio", "sample_rate"])
    assert kinds["region"] == ("describe", ["box"])
    region = next(s for s in samples if s.task == "region")
    box = next(kw["box"] for kind, task, kw in oracle.calls if task == "region")
    assert box == inclusive_to_exclusive(region.box)


def test_empty_and_wrong_predictions(samples):
    result = evaluate(Oracle(samples, "empty"), samples)
    tasks = result["tasks"]
    assert all(t["cIoU"] == 0.0 for name, t in tasks.items() if name not in ("text_absent", "direction_out_of_view"))
    assert tasks["audio"]["mIoU"] == 0.0
    assert tasks["text_absent"]["no_target_accuracy"] == 1.0  # nothing found, rightly
    assert result["overall"]["target_accuracy"] == 0.0 and "score_spearman" not in result["overall"]
    words = evaluate(Oracle(samples, "wrong_words"), samples)["tasks"]
    assert words["region"]["exact_match"] == 0.0 and words["region"]["cIoU"] == 1.0


def test_cli_writes_json_and_grid(tmp_path, capsys):
    out, grid = tmp_path / "r.json", tmp_path / "g.png"
    assert main(["--preset", "tiny", "--scenes", "8", "--output", str(out), "--grid", str(grid),
                 "--grid-per-task", "1", "--threads", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 16 and report["seed"] == EVAL_SEED
    assert set(report["tasks"]) == set(TOY_TASK_ORDER) | EXTRA
    assert {"target_accuracy", "no_target_accuracy"} <= set(report["overall"])
    assert Image.open(grid).size[1] > 0
    assert "text:" in capsys.readouterr().out


@pytest.mark.skipif(not (TOY_CHECKPOINT / "config.json").is_file(),
                    reason="model/toy has no trained checkpoint yet (train it: see model/toy/README.md)")
def test_committed_toy_checkpoint_on_held_out_scenes():
    report = run(str(TOY_CHECKPOINT), scenes=50, threads=2)
    tasks = report["tasks"]
    for (task, metric), threshold in TOY_THRESHOLDS.items():
        assert tasks[task][metric] >= threshold, (task, metric, tasks[task])
    for metric, threshold in TOY_OVERALL.items():
        assert report["overall"][metric] >= threshold, (metric, report["overall"])


@pytest.mark.skipif(not (TOY_CHECKPOINT / "config.json").is_file(), reason="no model/toy checkpoint")
def test_committed_toy_checkpoint_says_not_found():
    from anyref_ros.model import AnyRefPipeline
    from anyref_ros.model.prompts import NO_OBJECT_ANSWER

    pipe = AnyRefPipeline.from_pretrained(str(TOY_CHECKPOINT), device="cpu")
    assert pipe.config.prompt.no_object_answer == NO_OBJECT_ANSWER
    world = ToyWorld(EVAL_SEED)
    present, absent = world.sample(0, "text"), world.sample(0, "text", absent=True)
    ref = pipe.segment(present.image, text=present.query)
    assert ref.found and ref.mask.any() and ref.box is not None and 0.0 < ref.score <= 1.0
    ref = pipe.segment(absent.image, text=absent.query)
    assert not ref.found and ref.mask.shape == absent.image.shape[:2] and not ref.mask.any()
    assert ref.box is None and ref.score == 0.0 and ref.text == NO_OBJECT_ANSWER


def test_audio_frames_of_one_video_are_scored_together():
    world = ToyWorld(EVAL_SEED, size=(64, 48))
    frames = [world.sample(i, "audio") for i in range(3)]
    for f in frames[:2]:
        f.metadata["video"] = "v1"
    frames[2].metadata["video"] = "v2"
    tasks = evaluate(Oracle(frames), frames)["tasks"]
    assert tasks["audio"]["mIoU"] == 1.0 and tasks["audio"]["F"] == pytest.approx(1.0)
    scores = TaskScores()
    oracle = Oracle(frames)
    for f in frames:
        scores.add("audio", f, predict(oracle, f))
    scores.flush()
    assert scores.avs.summary()["videos"] == 2 and scores.avs.summary()["frames"] == 3
