"""Shared test set-up: isolated ROS 2 graph, offline model hubs, helpers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"

# Isolation when pytest is started by hand (make test sets these too): a random
# domain, localhost-only discovery, logs in a temporary folder.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="anyref-roslog-"))

from anyref_ros import ros_env  # noqa: E402

ros_env.configure()


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process of this venv (same ROS domain)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def spawn_helper(name: str, *args: str, **env: str) -> subprocess.Popen:
    """Start tests/helpers/NAME.py in its own process (output on its stdout pipe)."""
    return subprocess.Popen(
        [sys.executable, str(HELPERS / f"{name}.py"), *args],
        cwd=REPO,
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def spawn():
    """Like spawn_helper; every process started is stopped at the end of the test."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str, **env: str) -> subprocess.Popen:
        procs.append(spawn_helper(name, *args, **env))
        return procs[-1]

    yield start
    for proc in procs:
        stop_process(proc)


@pytest.fixture
def ros_context():
    """An rclpy context of its own for one test."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)
