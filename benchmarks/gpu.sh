#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md, one command:
#
#   make setup && bash benchmarks/gpu.sh
#
# On a machine with an NVIDIA GPU it runs anyref-benchmark three times:
#   1. the full-size anyref-7b, random weights, bfloat16 (time does not depend on the values);
#   2. the same with the language model's weights in 4 bits (bitsandbytes NF4);
#   3. the embedded toy model, model/toy;
# and appends one section to benchmarks/RESULTS.md: date, git commit, GPU, driver,
# torch/CUDA versions, the exact commands, a table of the headline figures and each
# run's whole JSON. A run that fails is recorded as failed, the others are kept,
# and the script exits non-zero. Without a CUDA GPU it stops before running anything.
#
# Environment: REPEATS (default 5), GPU_INDEX (default 0: the first CUDA device torch
# sees), PYTHON (default .venv/bin/python), RESULTS (default benchmarks/RESULTS.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
RESULTS="${RESULTS:-$ROOT/benchmarks/RESULTS.md}"
REPEATS="${REPEATS:-5}"
GPU_INDEX="${GPU_INDEX:-0}"
DEVICE="cuda:$GPU_INDEX"

fail() {
  echo "benchmarks/gpu.sh: $*" >&2
  exit 1
}

[[ "$REPEATS" =~ ^[1-9][0-9]*$ ]] || fail "REPEATS must be a positive integer, got '$REPEATS'"
[[ "$GPU_INDEX" =~ ^[0-9]+$ ]] || fail "GPU_INDEX must be a device number, got '$GPU_INDEX'"
[[ -x "$PYTHON" ]] || fail "no Python at $PYTHON: run 'make setup' first (or set PYTHON)"
command -v nvidia-smi > /dev/null \
  || fail "nvidia-smi not found: this script needs a machine with an NVIDIA GPU and its driver (CPU figures: anyref-benchmark --device cpu)"
nvidia-smi > /dev/null 2>&1 || fail "nvidia-smi cannot talk to the driver: $(nvidia-smi 2>&1 | head -n 1)"
"$PYTHON" - "$GPU_INDEX" << 'PY' || fail "torch in $PYTHON sees no CUDA device $GPU_INDEX (CPU-only torch, or CUDA_VISIBLE_DEVICES hides it)"
import sys

import torch

sys.exit(0 if torch.cuda.is_available() and int(sys.argv[1]) < torch.cuda.device_count() else 1)
PY

cd "$ROOT"
BENCH=(anyref-benchmark)
[[ -x "$(dirname "$PYTHON")/anyref-benchmark" ]] || BENCH=("$PYTHON" -m anyref_ros.tools.benchmark)

RUNS=(
  "anyref-7b bf16|--preset anyref-7b --random-weights --device $DEVICE --dtype bfloat16 --repeats $REPEATS"
  "anyref-7b 4-bit|--preset anyref-7b --random-weights --device $DEVICE --dtype bfloat16 --quantization 4bit --repeats $REPEATS"
  "model/toy|--checkpoint model/toy --device $DEVICE --repeats $REPEATS"
)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

failed=0
index=0
for run in "${RUNS[@]}"; do
  name="${run%%|*}"
  read -r -a args <<< "${run#*|}"
  index=$((index + 1))
  echo "== $name: anyref-benchmark ${args[*]}" >&2
  printf '%s\n%s\n' "$name" "anyref-benchmark ${args[*]}" > "$WORK/$index.run"
  if PATH="$(dirname "$PYTHON"):$PATH" "${BENCH[@]}" "${args[@]}" > "$WORK/$index.json" 2> "$WORK/$index.log"; then
    echo "   done" >&2
  else
    status=$?
    failed=1
    echo "   FAILED (exit $status); last lines of its output:" >&2
    tail -n 5 "$WORK/$index.log" >&2
  fi
done

commit="$(git -C "$ROOT" rev-parse --short=12 HEAD 2> /dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2> /dev/null)" ]]; then
  commit="$commit (with uncommitted changes)"
fi
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)"

"$PYTHON" - "$WORK" "$RESULTS" "$commit" "$driver" "$GPU_INDEX" << 'PY'
"""Append one section for this run of benchmarks/gpu.sh to RESULTS.md."""
import datetime
import json
import pathlib
import sys

import torch

work, results, commit, driver, gpu = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), *sys.argv[3:]
KEYS = ("single_query_ms", "eight_queries_same_frame_ms", "cached_query_ms", "prefix_cache_speedup",
        "forced_vs_generate_speedup", "overhead_ms_720p", "outputs_3d_ms_720p", "watch_fps_1", "watch_fps_4",
        "watch_fps_8", "watch_latency_ms_4", "peak_memory_mb")
props = torch.cuda.get_device_properties(int(gpu))
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [f"## {now}: {props.name}", "",
         f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; driver {driver}; "
         f"torch {torch.__version__}, CUDA {torch.version.cuda}",
         f"- commit: {commit}",
         "- command: `bash benchmarks/gpu.sh` (from the repository root, after `make setup`), which ran:", ""]
rows, raw = [], []
for run in sorted(work.glob("*.run"), key=lambda p: int(p.stem)):
    name, command = run.read_text().splitlines()[:2]
    lines.append(f"  - {name}: `{command}`")
    try:
        data = json.loads((work / f"{run.stem}.json").read_text())
    except (OSError, ValueError):
        log = (work / f"{run.stem}.log").read_text(errors="replace").strip().splitlines()
        reason = (log[-1] if log else "no output").replace("|", "/")[:200]
        rows.append(f"| {name} | failed: {reason} |" + " |" * (len(KEYS) - 1))
        continue
    cells = []
    for key in KEYS:
        value = data.get(key)
        cells.append("n/a" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value))
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
    raw.append((name, json.dumps(data, indent=2, sort_keys=True)))
lines += ["", "| run | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 1) + "|", *rows, ""]
for name, text in raw:
    lines += [f"<details><summary>{name}: the whole JSON</summary>", "", "```json", text, "```", "",
              "</details>", ""]
with results.open("a") as f:
    f.write("\n" + "\n".join(lines))
print(f"benchmarks/gpu.sh: appended {len(rows)} runs to {results}", file=sys.stderr)
PY

if [[ "$failed" != 0 ]]; then
  fail "some runs failed (recorded as failed in $RESULTS)"
fi
