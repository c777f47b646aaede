"""Two real processes (accelerate's launcher, gloo on CPU) train one
data-parallel job: no sample read twice, the weights of one process with
the same global batch, logs and checkpoints written once, resumable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

from anyref_ros.training.trainer import FINAL, LATEST, STATE_FILE, load_state, train

STEPS = 4
RUN = dict(steps=STEPS, batch_size=2, save_every=0, log_every=1, threads=1)  # global batch 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, cpu_flag="--multi_gpu"):
    """``accelerate launch <cpu_flag> --num_processes 2 -m anyref_ros.training ...``, CPU only."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", cpu_flag, "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "anyref_ros.training", "--config", "tiny", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _sets(out, **values):
    return [a for k, v in dict(RUN, output_dir=str(out), **values).items()
            for a in ("--set", f"{k}={json.dumps(v)}")]


def _log(folder):
    return [json.loads(x) if x.startswith("{") else x for x in (folder / "train.log").read_text().splitlines()]


def test_two_processes_train_as_one_with_the_same_global_batch(tmp_path, make_config):
    # one process, 2 micro-batches of 2: the same lanes as 2 processes x 1 micro-batch of 2
    reference = train(make_config(tmp_path / "one", grad_accum=2, **RUN))

    out = tmp_path / "two"
    first = _launch(_sets(out) + ["--stop-at", "2"])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = _launch(_sets(out) + ["--resume", "auto"])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    # one job of two processes, resumed from its own checkpoint
    lines = _log(out)
    headers = [x for x in lines if isinstance(x, str) and x.startswith("training tiny")]
    assert len(headers) == 2 and all("x 1 x 2 processes" in h and "MULTI_CPU (gloo)" in h for h in headers)
    assert sum(isinstance(x, str) and x.startswith(f"resumed from {out / 'checkpoint-2'} at step 2")
               for x in lines) == 1
    # written once: one line per step, one checkpoint, one final
    steps = [x for x in lines if isinstance(x, dict)]
    assert [x["step"] for x in steps] == list(range(1, STEPS + 1))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", FINAL, LATEST, "train.log",
                                                    "training_config.json"]
    assert second.stdout.count("saved ") + second.stderr.count("saved ") == 1
    # sharded: lane k (micro-batch 0 of process k) read draws k, k + 2, ...: 2 draws a step each
    assert load_state(out / "checkpoint-2")["next_draws"] == [8, 9]
    assert load_state(out / FINAL)["next_draws"] == [16, 17]
    assert load_state(out / FINAL)["samples"] == 4 * STEPS

    # the same losses (logged: a running mean, restarted by the resume) and weights as one process
    one = [x for x in _log(tmp_path / "one") if isinstance(x, dict)]
    assert [x["loss"] for x in steps[:2]] == [x["loss"] for x in one[:2]]
    a = load_file(str(reference / "trained.safetensors"))
    b = load_file(str(out / FINAL / "trained.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    assert (out / FINAL / STATE_FILE).is_file()


def test_accelerate_cpu_launch_is_refused_not_run_alone(tmp_path):
    """``accelerate launch --cpu --num_processes 2`` starts one process: refused with the commands that work."""
    run = _launch(_sets(tmp_path / "run"), cpu_flag="--cpu")
    assert run.returncode != 0
    assert "started a single process" in run.stderr and "--multi_gpu --num_processes N" in run.stderr
    assert not (tmp_path / "run").exists()
