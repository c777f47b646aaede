#!/usr/bin/env bash
# The main job on the embedded default: anyref-demo (node + toy camera +
# queries, pictures written to an output folder). Arguments go to anyref-demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$ROOT/.venv/bin/anyref-demo"
if [[ ! -x "$DEMO" ]]; then
  echo "[demo] anyref-demo is missing from .venv: run make setup" >&2
  exit 2
fi
exec "$DEMO" "$@"
