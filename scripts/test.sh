#!/usr/bin/env bash
# Builds fota and runs the whole test suite (unit, actor and end-to-end).
# Usage: scripts/test.sh [preset]   (release by default; dev = ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
bash scripts/setup.sh "$preset"
ctest --preset "$preset" -j2 --timeout 600
