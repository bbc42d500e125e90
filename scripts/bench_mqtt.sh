#!/usr/bin/env bash
# Upgrades per second through an MQTT broker and the bridge, beside the
# native protocol, in the same run: each run starts a fresh fotad (same
# options both ways), brings DEVICES simulated devices online with fota-sim
# (native: one gateway connection; mqtt: Mosquitto on a free loopback port,
# fota-mqtt, and fota-sim --mqtt on one MQTT connection), creates one
# snapshot cloud-push task over all of them and measures the task from its
# creation to its end (fota-sim --probe-get-task). Runs alternate between
# the modes; it prints the median of each, the command, the machine and the
# load average.
# Usage: scripts/bench_mqtt.sh [RUNS] [DEVICES]   (default: 3 100000)
# Environment: FOTA_BIN_DIR (default build/release/apps; built when it is
# the default), FOTA_BENCH_KEEP=1 keeps the work directories.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

runs="${1:-3}"
devices="${2:-100000}"
bin="${FOTA_BIN_DIR:-build/release/apps}"
if [ -z "${FOTA_BIN_DIR:-}" ]; then
  bash scripts/setup.sh release fotad fotactl fota-sim fota-mqtt >/dev/null
fi
for exe in fotad fotactl fota-sim fota-mqtt; do
  [ -x "$bin/$exe" ] || { echo "bench_mqtt: $bin/$exe is missing" >&2; exit 2; }
done
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "bench_mqtt: mosquitto is missing (scripts/setup.sh installs it)" >&2; exit 2; }
product=bench-product
sim_flags=(--product "$product" --devices "$devices" --versions 1.0.0
  --duration-ms 100-500 --start-delay-ms 0-50 --failure-rate 0 --seed 1
  --exit-when-idle 2)
node_flags=(--listen 0)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 tenths of a second for the command $1 to succeed.
wait_until() {
  for _ in $(seq "$2"); do
    eval "$1" && return 0
    sleep 0.1
  done
  return 1
}

# One run of mode $1 (native or mqtt) as run $2; prints upgrades/s on
# stdout, or fails.
run_once() {
  local mode="$1" i="$2" work port broker_port link
  # Runs in a subshell of its own: its processes end with it.
  trap cleanup EXIT
  work=$(mktemp -d "/tmp/fota-bench-mqtt.$mode.$i.XXXXXX")
  pids=()
  "$bin/fotad" --data-dir "$work/data" "${node_flags[@]}" >"$work/fotad.out" 2>"$work/fotad.log" &
  pids+=($!)
  wait_until "grep -q 'fotad listening on port' '$work/fotad.out'" 300 ||
    { echo "bench_mqtt: fotad did not start (see $work)" >&2; return 1; }
  port=$(sed -n 's/^fotad listening on port \([0-9]*\)$/\1/p' "$work/fotad.out")
  local ctl=("$bin/fotactl" --port "$port")
  "${ctl[@]}" firmware add --product "$product" --version 2.0.0 \
    --url https://firmware.example/bench-2.0.0.bin --size 4194304 \
    --sha256 "$(printf 'bench 2.0.0' | sha256sum | cut -c1-64)" >/dev/null
  "${ctl[@]}" firmware skip-verification --product "$product" --version 2.0.0 \
    --reason "benchmark image" >/dev/null
  link=(--port "$port")
  if [ "$mode" = mqtt ]; then
    broker_port=$(free_port)
    printf '%s\n' "listener $broker_port 127.0.0.1" "allow_anonymous true" \
      "persistence false" "max_queued_messages 0" "max_inflight_messages 0" \
      >"$work/mosquitto.conf"
    "$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
    pids+=($!)
    wait_until "(: <'/dev/tcp/127.0.0.1/$broker_port') 2>/dev/null" 100 ||
      { echo "bench_mqtt: mosquitto did not start (see $work)" >&2; return 1; }
    printf 'gateway-token\n' >"$work/gateway.token"
    "$bin/fota-mqtt" --broker "tcp://127.0.0.1:$broker_port" \
      --node "127.0.0.1:$port" --token-file "$work/gateway.token" \
      --client-id "fota-mqtt-bench-$i" >"$work/fota-mqtt.out" 2>"$work/fota-mqtt.log" &
    pids+=($!)
    wait_until "grep -q 'fota-mqtt ready' '$work/fota-mqtt.out'" 300 ||
      { echo "bench_mqtt: fota-mqtt did not get ready (see $work)" >&2; return 1; }
    link=(--mqtt "tcp://127.0.0.1:$broker_port")
  fi
  "$bin/fota-sim" "${link[@]}" "${sim_flags[@]}" --ready-file "$work/ready" \
    >"$work/sim.out" 2>"$work/sim.err" &
  local sim=$!
  pids+=($sim)
  wait_until "[ -f '$work/ready' ] || ! kill -0 $sim 2>/dev/null" 6000
  [ -f "$work/ready" ] || { echo "bench_mqtt: the $mode fleet did not come online (see $work)" >&2; return 1; }
  "${ctl[@]}" task create --name bench --product "$product" --target 2.0.0 \
    --source 1.0.0 --strategy snapshot --scope all --method cloud-push >"$work/task.out"
  local task
  task=$(sed -n 's/^task *\([0-9]*\)$/\1/p' "$work/task.out" | head -1)
  "$bin/fota-sim" --port "$port" --probe-get-task "$task" \
    --probe-interval-ms 100 --probe-min-calls 1 >"$work/probe.out" 2>&1 ||
    { echo "bench_mqtt: the $mode task did not end (see $work)" >&2; return 1; }
  wait "$sim" || true
  local rate
  rate=$(sed -n 's/^  upgrades\/s *\([0-9.]*\)$/\1/p' "$work/probe.out")
  local done_line
  done_line=$(grep 'executions finished' "$work/probe.out" | sed 's/^ *//')
  echo "bench_mqtt: $mode run $i: $rate upgrades/s; $done_line" >&2
  cleanup
  pids=()
  if [ "${FOTA_BENCH_KEEP:-0}" = 1 ]; then
    echo "bench_mqtt: kept $work" >&2
  else
    rm -rf "$work"
  fi
  echo "$rate"
}

load_before="$(uptime)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
native=()
mqtt=()
for ((i = 1; i <= runs; i++)); do
  native+=("$(run_once native "$i")")
  mqtt+=("$(run_once mqtt "$i")")
done
load_after="$(uptime)"

median() {
  printf '%s\n' "$@" | sort -g | awk '{ x[NR] = $1 } END { if (NR % 2) print x[(NR + 1) / 2]; else print (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "MQTT benchmark: upgrades/s of one snapshot cloud-push task over $devices devices (started $started)"
echo
echo "| path | median upgrades/s | runs |"
echo "|---|---|---|"
echo "| native protocol (fota-sim, one gateway connection) | $(median "${native[@]}") | ${native[*]} |"
echo "| MQTT (fota-sim --mqtt, one MQTT connection, Mosquitto, fota-mqtt) | $(median "${mqtt[@]}") | ${mqtt[*]} |"
echo
echo "command:      scripts/bench_mqtt.sh $runs $devices"
echo "fotad:        fotad --data-dir DIR ${node_flags[*]}"
echo "fota-sim:     fota-sim [--port P | --mqtt URL] ${sim_flags[*]}"
echo "machine:      $(nproc) CPUs, $cpu, $(uname -sr)"
echo "load before:  ${load_before#*load average: }"
echo "load after:   ${load_after#*load average: }"
