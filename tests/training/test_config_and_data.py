"""Training config files, CLI overrides, the schedule and the sample streams."""

from __future__ import annotations

import json

import pytest

from anyref_ros.data import EVAL_SEED
from anyref_ros.model import get_preset
from anyref_ros.training.cli import main, parse_set
from anyref_ros.training.config import DataSource, TrainConfig, default_config
from anyref_ros.training.data import SampleStream, build_lanes, build_stream, lane_of
from anyref_ros.training.trainer import lane_starts, lr_factor, merge, micro_seed, single_process_launch, trainable_names


def test_config_round_trip_json_and_yaml(tmp_path):
    config = default_config("toy")
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config
    (tmp_path / "c.yaml").write_text(
        "preset: tiny\nsteps: 7\nsources:\n  - {kind: toy, weight: 2, args: {task_weights: {text: 1}}}\n"
        "loss: {dice: 3.0}\n")
    loaded = TrainConfig.load(tmp_path / "c.yaml")
    assert loaded.steps == 7 and loaded.sources[0].weight == 2 and loaded.loss.dice == 3.0


@pytest.mark.parametrize("data", [{"stepz": 1}, {"schedule": "step"}, {"sources": []},
                                  {"loss": {"focal": 1}}, {"batch_size": 0},
                                  {"sources": [{"kind": "toy", "args": {"task_weights": {"video": 1}}}]}])
def test_bad_configs_are_rejected(data):
    with pytest.raises(ValueError):
        TrainConfig.from_dict(data)


def test_set_overrides_and_print_config(capsys):
    config = parse_set(default_config("toy"), ["steps=5", "loss.dice=2.5", "output_dir=runs/x",
                                               'model_overrides={"sam": {"encoder_depth": 2}}'])
    assert (config.steps, config.loss.dice, config.output_dir) == (5, 2.5, "runs/x")
    assert main(["--config", "tiny", "--set", "steps=3", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3


def test_model_overrides_merge():
    base = get_preset("toy").to_dict()
    merged = merge(base, {"sam": {"encoder_depth": 2}})
    assert merged["sam"]["encoder_depth"] == 2 and merged["sam"]["patch_size"] == base["sam"]["patch_size"]
    with pytest.raises(ValueError):
        merge(base, {"sam": {"depthh": 2}})


def test_schedule_warmup_then_decay():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(config, 0.0, 0) == pytest.approx(0.1)
    assert lr_factor(config, 0.1, 10) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + __import__("math").cos(0.1 * 3.14159265)), rel=1e-4)
    assert lr_factor(config, 1.0, 100) == pytest.approx(0.1)
    assert lr_factor(TrainConfig(schedule="linear", min_lr_ratio=0.0, warmup_steps=0), 0.5, 50) == pytest.approx(0.5)


def test_streams_are_deterministic_mixed_and_split_by_rank():
    config = TrainConfig(sources=[DataSource(weight=1.0, args={"size": [64, 48], "task_weights": {"text": 1}}),
                                  DataSource(weight=3.0, args={"size": [64, 48], "task_weights": {"audio": 1}})])
    a = build_stream(config, "[SEG]").take(40)
    b = build_stream(config, "[SEG]").take(40)
    assert [s.answer for s in a] == [s.answer for s in b]
    audio = sum(s.task == "audio" for s in a)
    assert 20 <= audio <= 38  # about 3:1
    seeds = {s.metadata["seed"] for s in a}
    assert EVAL_SEED not in seeds and min(seeds) >= 1000
    rank0 = build_stream(config, "[SEG]", rank=0, world=2)
    rank1 = build_stream(config, "[SEG]", rank=1, world=2)
    rank0.take(3), rank1.take(3)
    assert (rank0.next_draw, rank1.next_draw) == (6, 7)
    resumed = build_stream(config, "[SEG]", start=20)
    assert [s.answer for s in resumed.take(5)] == [s.answer for s in a[20:25]]


def test_lanes_split_a_step_the_same_way_for_any_processes_x_accumulation():
    """2 processes x 1 micro-batch and 1 process x 2 read the same micro-batches; no draw twice."""
    config = TrainConfig(sources=[DataSource(args={"size": [64, 48]})])

    def steps(processes, accum, count=3, batch=2):
        lanes = {(r, m): build_lanes(config, "[SEG]", [lane_of(m, r, processes)], processes * accum, [0])[0]
                 for r in range(processes) for m in range(accum)}
        out = []
        for _ in range(count):
            out.append({lane_of(m, r, processes): [s.metadata["index"] for s in stream.take(batch)]
                        for (r, m), stream in lanes.items()})
        return out, lanes

    two, lanes = steps(2, 1)
    one, _ = steps(1, 2)
    assert two == one
    assert two[0] == {0: [0, 2], 1: [1, 3]} and two[2] == {0: [8, 10], 1: [9, 11]}
    read = sorted(i for step in two for lane in step.values() for i in lane)
    assert read == list(range(12))  # 3 steps x 2 lanes x 2 samples: each scene once
    assert [s.next_draw for s in lanes.values()] == [12, 13]


def test_resume_positions_of_lanes():
    assert lane_starts({"next_draws": [8, 9]}, 2) == ([8, 9], True)
    assert lane_starts({"next_draw": 6}, 1) == ([6], True)  # a checkpoint from before lanes
    assert lane_starts({"next_draws": [8, 9]}, 4) == ([9, 9, 9, 9], False)  # nothing read twice
    assert micro_seed(0, 3, 1) == micro_seed(0, 3, 1) != micro_seed(0, 3, 0)


def test_a_single_process_accelerate_cpu_launch_is_recognised():
    launched = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert "mpirun" in single_process_launch(launched)
    assert single_process_launch(dict(launched, WORLD_SIZE="2", LOCAL_RANK="0")) is None  # torchrun
    assert single_process_launch({"ACCELERATE_USE_CPU": "True"}) is None  # --num_processes 1
    assert single_process_launch({}) is None  # plain anyref-train


def test_curriculum_limits_objects():
    config = TrainConfig(sources=[DataSource(args={"size": [64, 48]})],
                         curriculum=[{"until_step": 10, "max_objects": 2}])
    config = TrainConfig.from_dict(config.to_dict())
    stream = build_stream(config, "[SEG]")
    assert all(len(s.metadata["objects"]) <= 2 for s in stream.take(10, step=0))
    assert max(len(s.metadata["objects"]) for s in stream.take(30, step=10)) > 2


def test_trainable_sets():
    from anyref_ros.model import AnyRefPipeline

    pipe = AnyRefPipeline.from_pretrained("tiny", device="cpu")
    paper = trainable_names(pipe.model, "auto")
    assert any("lora_" in n for n in paper)
    assert not any(n.startswith(("sam.image_encoder", "vision_tower", "audio_encoder")) for n in paper)
    assert not any("q_proj.base_layer" in n for n in paper)
    assert "language_model.model.embed_tokens.weight" in paper
    assert len(trainable_names(pipe.model, "all")) == len(list(pipe.model.parameters()))


def test_example_config_files_load():
    from pathlib import Path

    import anyref_ros.training as training

    folder = Path(training.__file__).parent / "configs"
    toy = TrainConfig.load(folder / "toy.yaml")
    assert toy == default_config("toy")
    paper = TrainConfig.load(folder / "anyref-7b.yaml")
    assert paper.trainable == "paper" and paper.grad_accum == 8 and len(paper.sources) == 9
    assert paper.loss.iou_log == toy.loss.iou_log > 0
    head = TrainConfig.load(folder / "toy-iou-head.yaml")
    assert head.train_only == ["sam.mask_decoder.iou_prediction_head"] and head.loss.bce == 0.0
