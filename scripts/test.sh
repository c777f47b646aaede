#!/usr/bin/env bash
# Run the test suite in .venv on an isolated ROS 2 graph: a random
# ROS_DOMAIN_ID, localhost-only discovery, ROS logs in a temporary folder.
# Extra arguments go to pytest (e.g. `make test ARGS="-k conversions"`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V="$ROOT/.venv"
[[ -x "$V/bin/python" ]] || { echo "[test] no .venv: run make setup first" >&2; exit 1; }

export ROS_DOMAIN_ID=$((RANDOM % 100 + 1))
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_LOCALHOST_ONLY ROS_STATIC_PEERS _ROS_WHEELS_BOOTSTRAP_COMPLETE
ROS_LOG_DIR="$(mktemp -d -t anyref-roslog-XXXXXX)"
export ROS_LOG_DIR
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export FASTRTPS_DEFAULT_PROFILES_FILE="$ROOT/config/fastdds_profile.xml"
export FASTDDS_DEFAULT_PROFILES_FILE="$ROOT/config/fastdds_profile.xml"

cleanup() {
  # Shared-memory segments and port files left by processes that were killed.
  [[ -x "$V/bin/fastdds" ]] && "$V/bin/fastdds" shm clean >/dev/null 2>&1 || true
  rm -rf "$ROS_LOG_DIR"
}
trap cleanup EXIT

echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery LOCALHOST, logs in $ROS_LOG_DIR"
cd "$ROOT"
"$V/bin/python" -m pytest "$@"
