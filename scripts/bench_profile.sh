#!/usr/bin/env bash
# Profiles the rollout phase of one fleet benchmark run with
# `perf record --call-graph dwarf` (the release binaries have no frame
# pointers, so plain -g gives broken stacks). perf starts with its events
# off; the benchmark turns them on when the upgrades start and off when they
# are durable, through perf's control FIFOs (FOTA_BENCH_PERF_CTL/_ACK).
# Prints the top entries by self and by children (library, symbol) and keeps
# them in bench/results/profile-<size>.txt; perf.data stays under build/.
# Usage: scripts/bench_profile.sh [SIZE] [TOP]   (default: 100000 15)
# Environment: FOTA_BENCH_BIN, FOTA_BENCH_POLICY (as bench_fleet.sh),
# PERF_FREQ (default 499), PERF_DATA (default build/bench/perf/perf-<size>.data),
# PERF_RECORD=0 (report on an existing PERF_DATA only).
set -euo pipefail
cd "$(dirname "$0")/.."

size="${1:-100000}"
top="${2:-15}"
bin="${FOTA_BENCH_BIN:-build/bench/bench/fota_bench_fleet}"
policy="${FOTA_BENCH_POLICY:-Sharing}"
freq="${PERF_FREQ:-499}"
data="${PERF_DATA:-build/bench/perf/perf-$size.data}"
txt="bench/results/profile-$size.txt"
command -v perf >/dev/null || {
  echo "bench_profile: no perf (apt-get install linux-perf)" >&2
  exit 2
}
mkdir -p "$(dirname "$data")" "$(dirname "$txt")"
cmd=("$bin" --benchmark_filter="Fleet/$policy/devices:$size/"
  --benchmark_format=json)
if [ "${PERF_RECORD:-1}" != 0 ]; then
  fifos="$(mktemp -d)"
  trap 'rm -rf "$fifos"' EXIT
  mkfifo "$fifos/ctl" "$fifos/ack"
  FOTA_BENCH_PERF_CTL="$fifos/ctl" FOTA_BENCH_PERF_ACK="$fifos/ack" \
    perf record -F "$freq" --call-graph dwarf,16384 -D -1 \
    --control "fifo:$fifos/ctl,$fifos/ack" -o "$data" -- "${cmd[@]}" \
    >"$data.json"
fi

# One line per entry: percentages, library, symbol (demangled, shortened).
report() {
  local only="$1"
  shift
  # sed -n rather than head: perf must not die of SIGPIPE under pipefail.
  # Names c++filt cannot demangle (CAF's longest templates) are shortened.
  perf report -i "$data" --stdio "$@" --sort dso,symbol --percent-limit 0.3 \
    -g none 2>/dev/null | grep -E '^ +[0-9]' | c++filt | grep -E -- "$only" |
    sed -n "1,${top}p" |
    sed -E 's/ +- +- *$//; s/ +$//; s/\[\.\] //; s/\[k\] //' |
    sed -E 's/(_Z[A-Za-z0-9_]{70})[A-Za-z0-9_]+/\1.../' | cut -c1-200
}
{
  echo "# perf record -F $freq --call-graph dwarf,16384 of the rollout phase"
  echo "# ${cmd[*]}"
  echo "# $(uptime)"
  if [ -s "$data.json" ]; then
    python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["benchmarks"][0]
print("# upgrades/s %.0f, cpu_us/upgrade %.1f, load_avg %s" % (b["upgrades/s"],
  b["cpu_us/upgrade"], json.load(open(sys.argv[1]))["context"]["load_avg"]))' \
      "$data.json" 2>/dev/null || true
  fi
  echo
  echo "## top $top by self"
  report . --no-children
  echo
  echo "## top $top by children (inclusive)"
  report . --children
  echo
  echo "## top $top fota functions by children (inclusive)"
  report 'fota::' --children
} | tee "$txt"
