#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (the `fuzz` preset), writes a seed
# corpus, and runs each fuzzer for SECONDS (default 60).
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
bash scripts/setup.sh fuzz fota-fuzz-replay fota-fuzz-frame fota-fuzz-seeds >/dev/null
bin=build/fuzz/tests/fuzz
corpus=build/fuzz/corpus
"$bin/fota-fuzz-seeds" "$corpus/replay" "$corpus/frame"
for name in replay frame; do
  echo "== fota-fuzz-$name for $seconds s"
  "$bin/fota-fuzz-$name" -max_total_time="$seconds" -print_final_stats=1 \
    -rss_limit_mb=2048 "$corpus/$name" 2>&1 | tail -20
done
