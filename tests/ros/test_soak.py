"""The 60 s soak run of issue 10: ``anyref-soak --minutes 1`` (the real
console entry point, which starts the real ``anyref_node`` on model/toy on the
CPU) under a 30 Hz 1280x720 camera, 15 Hz depth, real-time audio and one query
per second.

Asserted, as the issue asks: every query is answered, the node is alive at
the end, and its resident memory grows by at most 50 MB after the first 20 s.
Speed (camera callback p50/p99, query latency) is reported, not asserted:
the figures are printed and kept in the JSON for the benchmark table.

The node runs with ``max_queue: 8`` (default 4): at one query per second plus
the sound events, a stall of the shared 2-core machine of 4-5 s (seen once in
a clean-clone run: a sound-event query took 4.9 s in the model, other runs
0.05 s) otherwise fills the queue, and a query on the ``query`` topic is then
refused as busy, which the topic cannot report back (only the node's log and
``queries_refused`` in /diagnostics say it). What this test guards is leaks
and survival, not a latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport import REPO, child_env

RSS_GROWTH_LIMIT_MB = 50.0
WARMUP_S = 20.0

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


@pytest.mark.timeout(600)
def test_soak_one_minute(tmp_path: Path):
    exe = Path(sys.executable).with_name("anyref-soak")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "anyref_ros.tools.soak"]
    out = tmp_path / "soak.json"
    cmd += ["--minutes", "1", "--warmup-s", str(WARMUP_S), "--checkpoint", "model/toy", "--device", "cpu",
            "--json-out", str(out), "--node-log", str(tmp_path / "node.log"), "-p", "max_queue:=8"]
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=560)
    log_tail = (tmp_path / "node.log").read_text()[-3000:] if (tmp_path / "node.log").exists() else ""
    assert out.exists(), f"anyref-soak wrote no JSON (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n{log_tail}"
    report = json.loads(out.read_text())
    print("\n[soak] " + json.dumps({k: v for k, v in report.items() if k != "rss_mb_every_10s"}))

    assert report["queries_asked"] >= 50, report
    assert report["queries_answered"] == report["queries_asked"], report["errors"]
    assert report["by_kind"]["topic"]["answered"] == report["by_kind"]["topic"]["asked"] > 0
    assert report["node_alive"], log_tail
    assert report["frames_published"] > 0 and report["frames_received_by_node"], report
    growth = report["rss_growth_mb"]
    assert growth is not None and growth <= RSS_GROWTH_LIMIT_MB, (
        f"node RSS grew {growth} MB after the first {WARMUP_S:g} s (limit {RSS_GROWTH_LIMIT_MB:g} MB): "
        f"{report['rss_mb_every_10s']}")
    assert proc.returncode == 0, proc.stderr[-3000:]
