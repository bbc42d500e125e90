#!/usr/bin/env bash
# Checks packaging/fotad.service offline with systemd's own tools: the unit
# verifies without a single warning (ExecStart pointed at the fotad just
# built, since verify checks that the binary exists), and its exposure as
# `systemd-analyze security` rates it stays at most 2.0 of 10.
# Usage: verify_unit.sh UNIT_FILE FOTAD_BINARY
set -euo pipefail
unit=$1
fotad=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/local/bin/fotad |ExecStart=$fotad |" "$unit" >"$work/fotad.service"
if ! grep -q "^ExecStart=$fotad " "$work/fotad.service"; then
  echo "the unit's ExecStart does not run /usr/local/bin/fotad"
  exit 1
fi
if ! out=$(systemd-analyze verify "$work/fotad.service" 2>&1); then
  echo "systemd-analyze verify failed:"
  echo "$out"
  exit 1
fi
if [ -n "$out" ]; then
  echo "systemd-analyze verify warns:"
  echo "$out"
  exit 1
fi
if ! systemd-analyze security --offline=yes --threshold=20 \
  "$work/fotad.service" >"$work/security" 2>&1; then
  cat "$work/security"
  echo "the unit's exposure is above 2.0"
  exit 1
fi
tail -n 1 "$work/security"
echo "fotad.service verifies"
