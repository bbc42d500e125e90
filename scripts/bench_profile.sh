#!/usr/bin/env bash
# Profiles the rollout phase of one fleet benchmark run with
# `perf record --call-graph dwarf` (the release binaries have no frame
# pointers, so plain -g gives broken stacks). perf starts with its events
# off; the benchmark turns them on when the upgrades start and off when they
# are durable, through perf's control FIFOs (FOTA_BENCH_PERF_CTL/_ACK).
# Prints the top entries by self and by children.
# Usage: scripts/bench_profile.sh [SIZE] [TOP]   (default: 100000 15)
# Environment: FOTA_BENCH_BIN, FOTA_BENCH_POLICY (as bench_fleet.sh),
# PERF_FREQ (default 499), PERF_OUT (default bench/results/raw/perf-<size>).
set -euo pipefail
cd "$(dirname "$0")/.."

size="${1:-100000}"
top="${2:-15}"
bin="${FOTA_BENCH_BIN:-build/bench/bench/fota_bench_fleet}"
policy="${FOTA_BENCH_POLICY:-Sharing}"
freq="${PERF_FREQ:-499}"
out="${PERF_OUT:-bench/results/raw/perf-$size}"
command -v perf >/dev/null || {
  echo "bench_profile: no perf (apt-get install linux-perf)" >&2
  exit 2
}
mkdir -p "$(dirname "$out")"
fifos="$(mktemp -d)"
trap 'rm -rf "$fifos"' EXIT
mkfifo "$fifos/ctl" "$fifos/ack"

FOTA_BENCH_PERF_CTL="$fifos/ctl" FOTA_BENCH_PERF_ACK="$fifos/ack" \
  perf record -F "$freq" --call-graph dwarf,16384 -D -1 \
  --control "fifo:$fifos/ctl,$fifos/ack" -o "$out.data" -- \
  "$bin" --benchmark_filter="Fleet/$policy/devices:$size/" \
  --benchmark_counters_tabular=true

report() {
  perf report -i "$out.data" --stdio "$@" \
    --sort symbol --percent-limit 0.5 -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -n "$top"
}
{
  echo "## top $top by self"
  report --no-children
  echo
  echo "## top $top by children (inclusive)"
  report --children
} | tee "$out.txt"
