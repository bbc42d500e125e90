#!/usr/bin/env bash
# The crash-consistency torture harness: TRIALS times (default 20), a fotad,
# a simulated fleet and concurrent tasks (snapshot, increment, chained, with
# pauses and cancels); the node is killed with SIGKILL at a random moment,
# restarted, and the fleet finishes. Every acknowledged report must be
# counted exactly once, no device held twice, nothing stuck, counters equal
# to the lists, and the live state digest equal to the replayed one.
# Usage: scripts/torture.sh [TRIALS] [extra fota-torture options, e.g. --seed 7 --devices 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-20}"
shift || true
bash scripts/setup.sh release fotad fota-sim fota-torture >/dev/null
exec build/release/tests/torture/fota-torture --trials "$trials" \
  --bin-dir build/release/apps "$@"
