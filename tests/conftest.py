"""Shared test set-up: isolated ROS 2 graph, offline model hubs, helpers."""

from __future__ import annotations

import os
import random
import subprocess
import tempfile

import pytest

# Isolation when pytest is started by hand (make test sets these too): a random
# domain, localhost-only discovery, logs in a temporary folder.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="anyref-roslog-"))

from anyref_ros import ros_env  # noqa: E402
from testsupport import spawn_helper, stop_process  # noqa: E402

ros_env.configure()


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
