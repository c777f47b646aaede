"""The DeepSpeed accelerate configs of the 7B recipe, checked as far as a
machine without GPUs (and without DeepSpeed) allows: accelerate reads them,
its launcher turns them into the environment each process gets, and the
trainer fills DeepSpeed's config from the training config."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, DistributedType
from accelerate.utils.launch import prepare_deepspeed_cmd_env

import anyref_ros.training as training
from anyref_ros.training.cli import build_parser
from anyref_ros.training.config import default_config
from anyref_ros.training.trainer import configure_deepspeed, offloads_optimizer

FOLDER = Path(training.__file__).parent / "configs" / "accelerate"
CONFIGS = {"deepspeed-zero2": (2, "none", "none"), "deepspeed-zero3-offload": (3, "cpu", "cpu")}


def _launch_env(name, monkeypatch):
    """What ``accelerate launch --config_file NAME -m anyref_ros.training --config anyref-7b``
    would hand each process, set in this process's environment."""
    argv = ["--config_file", str(FOLDER / f"{name}.yaml"), "-m", "anyref_ros.training", "--config", "anyref-7b"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    assert args.use_deepspeed and args.num_processes == 8 and args.num_machines == 1
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command
    _, env = prepare_deepspeed_cmd_env(args)
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    build_parser().parse_args(args.training_script_args)  # anyref-train takes the script's arguments
    assert args.training_script == "anyref_ros.training" and args.module
    return env


def test_every_accelerate_config_is_listed():
    assert sorted(p.stem for p in FOLDER.glob("*.yaml")) == sorted(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_accelerate_reads_the_config(name):
    config = load_config_from_file(str(FOLDER / f"{name}.yaml"))  # unknown top-level keys raise
    assert isinstance(config, ClusterConfig) and config.distributed_type == DistributedType.DEEPSPEED
    options = {a.dest for a in launch_command_parser()._actions}
    assert set(config.deepspeed_config) <= options, set(config.deepspeed_config) - options
    # batch, accumulation, clipping and precision come from the training config alone
    assert not {"gradient_accumulation_steps", "gradient_clipping", "deepspeed_config_file"} \
        & set(config.deepspeed_config)
    assert config.mixed_precision is None


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_trainer_fills_deepspeed_from_the_training_config(name, monkeypatch):
    stage, optimizer_device, param_device = CONFIGS[name]
    env = _launch_env(name, monkeypatch)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
    plugin = DeepSpeedPlugin()  # reads the environment, as Accelerator() does in each process
    recipe = default_config("anyref-7b")
    configure_deepspeed(plugin, recipe)
    ds = plugin.deepspeed_config
    assert ds["train_micro_batch_size_per_gpu"] == recipe.batch_size == 6
    assert ds["gradient_accumulation_steps"] == plugin.gradient_accumulation_steps == recipe.grad_accum == 8
    assert ds["gradient_clipping"] == recipe.clip_grad
    zero = ds["zero_optimization"]
    assert zero["stage"] == stage
    assert zero["offload_optimizer"]["device"] == optimizer_device
    assert zero["offload_param"]["device"] == param_device
    assert offloads_optimizer(plugin) == (optimizer_device == "cpu")


def test_a_deepspeed_value_against_the_training_config_is_refused(monkeypatch):
    _launch_env("deepspeed-zero2", monkeypatch)
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "4")
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        configure_deepspeed(DeepSpeedPlugin(), default_config("anyref-7b"))
