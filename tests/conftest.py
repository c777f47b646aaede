"""Shared test set-up: isolated ROS 2 graph, offline model hubs, helpers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report ends with the last log lines of the anyref nodes it
    used (tests/ros/node_harness.py: start_node): CI keeps only pytest's output."""
    outcome = yield
    report = outcome.get_result()
    harness = sys.modules.get("node_harness")
    if not report.failed or harness is None:
        return
    for proc in harness.STARTED[-2:]:
        state = "running" if proc.poll() is None else f"exit code {proc.returncode}"
        report.sections.append((f"anyref_node pid {proc.pid} ({state}), last 40 lines",
                                "\n".join(proc.output[-40:])))
