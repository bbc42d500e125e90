#!/usr/bin/env bash
# The TCP benchmark: fotad (release build, its own data directory, fsync on)
# and fota-sim as separate processes. fota-sim registers N devices and
# brings them online in batches over several gateway connections; a
# snapshot task then upgrades all of them by cloud push, while a second
# fota-sim, an operator on its own connection, calls GetTask again and again.
#
# Reports: registration + online devices/s, task creation time (the
# `fotactl task create` call), upgrades/s (the task's executions over the
# time from its creation to its completion), GetTask p50/p99 during the
# rollout, fotad's peak RSS, and the load average.
#
# Usage: scripts/tcp_bench.sh [devices]      (default 100000)
# Environment: BATCH (1000; 1 = RegisterDevice + DeviceOnline per device),
#   CONNECTIONS (4), DURATION_MS (fota-sim --duration-ms, "10-100"),
#   NO_BUILD=1 (use the binaries as they are), KEEP=1 (keep the work dir).
set -euo pipefail
cd "$(dirname "$0")/.."
devices="${1:-100000}"
batch="${BATCH:-1000}"
connections="${CONNECTIONS:-4}"
duration="${DURATION_MS:-10-100}"
[ -n "${NO_BUILD:-}" ] || bash scripts/setup.sh release fotad fotactl fota-sim >/dev/null
bin="${BIN:-build/release/apps}"
work=$(mktemp -d /tmp/fota-tcp-bench.XXXXXX)
product=bench-product

cleanup() {
  [ -n "${probe_pid:-}" ] && kill "$probe_pid" 2>/dev/null || true
  [ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
  [ -n "${node_pid:-}" ] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "work directory: $work"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

"$bin/fotad" --data-dir "$work/data" --listen 0 >"$work/fotad.out" 2>"$work/fotad.log" &
node_pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's/^fotad listening on port \([0-9]*\)$/\1/p' "$work/fotad.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "fotad did not start:"; cat "$work/fotad.log"; exit 1; }
ctl() { "$bin/fotactl" --port "$port" "$@"; }

sha=$(printf 'fota bench image 2.0.0' | sha256sum | cut -c1-64)
ctl firmware add --product "$product" --version 2.0.0 \
  --url https://firmware.example/bench-2.0.0.bin --size 4194304 --sha256 "$sha" >/dev/null
ctl firmware skip-verification --product "$product" --version 2.0.0 \
  --reason "benchmark image" >/dev/null

echo "== fota-sim: $devices devices, batch $batch, $connections connections"
"$bin/fota-sim" --port "$port" --product "$product" --devices "$devices" \
  --versions 1.0.0 --duration-ms "$duration" --start-delay-ms 0-10 \
  --failure-rate 0 --seed 1 --exit-when-idle 3 --batch "$batch" \
  --connections "$connections" --ready-file "$work/ready" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 36000); do
  [ -f "$work/ready" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "fota-sim stopped early:"; cat "$work/sim.err"; exit 1; }
  sleep 0.05
done
[ -f "$work/ready" ] || { echo "the fleet did not come online"; exit 1; }

echo "== snapshot task over $devices devices"
t0=$(now)
ctl --json task create --name tcp-bench --product "$product" --target 2.0.0 \
  --source 1.0.0 --strategy snapshot --scope all --method cloud-push >"$work/task.json"
t1=$(now)
task=$(sed -n 's/.*"task_id": *"\{0,1\}\([0-9]*\)"\{0,1\}.*/\1/p' "$work/task.json" | head -1)
[ -n "$task" ] || { echo "no task id in:"; cat "$work/task.json"; exit 1; }

"$bin/fota-sim" --port "$port" --probe-get-task "$task" --probe-interval-ms 2 \
  --probe-min-calls 1000 >"$work/probe.out" 2>"$work/probe.err" &
probe_pid=$!
wait "$probe_pid" || { echo "the probe failed:"; cat "$work/probe.err"; exit 1; }
probe_pid=
wait "$sim_pid" || true
sim_pid=
peak_kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$node_pid/status")

bring_up=$(sed -n 's/^  registered and online in *//p' "$work/sim.out")
echo
echo "== results ($devices devices, batch $batch, $connections connections, fsync on)"
echo "registration + online    $bring_up"
echo "task creation            $(elapsed "$t0" "$t1") s (fotactl task create)"
sed -n 's/^  \(GetTask while running\|GetTask in all\|executions finished\|created to finished\|upgrades\/s\)/\1/p' "$work/probe.out"
echo "fotad peak RSS           $((peak_kib / 1024)) MiB ($(awk -v k="$peak_kib" -v n="$devices" 'BEGIN { printf "%.2f", k * 1024 / n / 1024 }') KiB per device)"
echo "errors (fota-sim)        $(sed -n 's/^  error responses *//p' "$work/sim.out")"
echo "load average             $(cut -d' ' -f1-3 /proc/loadavg)"
