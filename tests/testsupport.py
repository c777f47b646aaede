"""Helpers shared by the tests (import as `from testsupport import ...`;
conftest modules are not importable by name when several exist)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "helpers"


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


def collect_output(proc: subprocess.Popen) -> list[str]:
    """The lines ``proc`` writes on its stdout pipe, collected by a reader thread
    (so a chatty process never blocks on a full pipe) into ``proc.output``."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    proc.output, proc.output_reader = lines, threading.Thread(target=read, daemon=True)
    proc.output_reader.start()
    return lines


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
