#!/usr/bin/env bash
# The demo: a fotad node with its embedded RocksDB and a simulated fleet of
# 10,000 devices going through one snapshot batch upgrade.
# With `mqtt`, the devices reach the node the way MQTT devices do: through
# a Mosquitto broker (on a free loopback port) and the bridge, fota-mqtt.
# Usage: scripts/demo.sh [mqtt] [devices]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=native
if [ "${1:-}" = mqtt ]; then
  mode=mqtt
  shift
fi
devices="${1:-10000}"
targets=(fotad fotactl fota-sim)
[ "$mode" = mqtt ] && targets+=(fota-mqtt)
bash scripts/setup.sh release "${targets[@]}" >/dev/null
bin=build/release/apps
work=$(mktemp -d /tmp/fota-demo.XXXXXX)
product=demo-product

cleanup() {
  [ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
  [ -n "${bridge_pid:-}" ] && kill "$bridge_pid" 2>/dev/null || true
  [ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null || true
  [ -n "${node_pid:-}" ] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting fotad (data in $work/data)"
"$bin/fotad" --data-dir "$work/data" --listen 0 >"$work/fotad.out" 2>"$work/fotad.log" &
node_pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/^fotad listening on port \([0-9]*\)$/\1/p' "$work/fotad.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "fotad did not start:"; cat "$work/fotad.log"; exit 1; }
ctl() { "$bin/fotactl" --port "$port" "$@"; }

echo "== adding firmware $product/2.0.0 (attested: the demo has no lab devices)"
sha=$(printf 'fota demo image 2.0.0' | sha256sum | cut -c1-64)
ctl firmware add --product "$product" --version 2.0.0 \
  --url https://firmware.example/demo-2.0.0.bin --size 4194304 --sha256 "$sha" \
  --description "demo release" >/dev/null
ctl firmware skip-verification --product "$product" --version 2.0.0 \
  --reason "demo image, tested in the lab" >/dev/null
ctl firmware list --product "$product"

sim_link=(--port "$port")
if [ "$mode" = mqtt ]; then
  # A free loopback port for the broker.
  broker_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # One connection (the bridge's, fota-sim's) carries many devices: the
  # broker must not drop what queues up for it.
  printf '%s\n' "listener $broker_port 127.0.0.1" "allow_anonymous true" \
    "persistence false" "max_queued_messages 0" "max_inflight_messages 0" \
    >"$work/mosquitto.conf"
  echo "== starting mosquitto on 127.0.0.1:$broker_port"
  mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  "$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    (: <"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break
    kill -0 "$broker_pid" 2>/dev/null || { echo "mosquitto did not start:"; cat "$work/mosquitto.log"; exit 1; }
    sleep 0.1
  done

  echo "== starting fota-mqtt, the bridge (a gateway with the development token)"
  printf 'gateway-token\n' >"$work/gateway.token"
  "$bin/fota-mqtt" --broker "tcp://127.0.0.1:$broker_port" \
    --node "127.0.0.1:$port" --token-file "$work/gateway.token" \
    >"$work/fota-mqtt.out" 2>"$work/fota-mqtt.log" &
  bridge_pid=$!
  for _ in $(seq 100); do
    grep -q "fota-mqtt ready" "$work/fota-mqtt.out" && break
    kill -0 "$bridge_pid" 2>/dev/null || { echo "fota-mqtt did not start:"; cat "$work/fota-mqtt.log"; exit 1; }
    sleep 0.1
  done
  grep -q "fota-mqtt ready" "$work/fota-mqtt.out" || { echo "fota-mqtt is not ready:"; cat "$work/fota-mqtt.log"; exit 1; }
  sim_link=(--mqtt "tcp://127.0.0.1:$broker_port")
  sim_over=" over MQTT"
fi

echo "== starting fota-sim with $devices devices${sim_over:-}"
"$bin/fota-sim" "${sim_link[@]}" --product "$product" --devices "$devices" \
  --versions 1.0.0:70,1.1.0:25,0.9.0:5 --duration-ms 300-3000 \
  --failure-rate 0.03 --seed 42 --exit-when-idle 2 \
  --ready-file "$work/fleet-ready" &
sim_pid=$!
# Wait until the whole fleet is registered and online.
for _ in $(seq 1200); do
  [ -f "$work/fleet-ready" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "fota-sim stopped early"; exit 1; }
  sleep 0.1
done

echo
echo "== creating a snapshot task: 1.0.0 and 1.1.0 -> 2.0.0, all devices, cloud push"
ctl task create --name demo-rollout --product "$product" --target 2.0.0 \
  --source 1.0.0 --source 1.1.0 --strategy snapshot --scope all \
  --method cloud-push >"$work/task.out"
task=$(sed -n 's/^task *\([0-9]*\)$/\1/p' "$work/task.out" | head -1)

while :; do
  status=$(ctl --json task show "$task" | sed -n 's/.*"status": *"TASK_STATUS_\([A-Z]*\)".*/\1/p' | head -1)
  [ "$status" = COMPLETED ] || [ "$status" = CANCELED ] && break
  sleep 0.5
done
wait "$sim_pid" || true
sim_pid=

echo
echo "== final counts of task $task"
ctl task show "$task"
echo
echo "== failed devices and their reasons (first 20)"
ctl task details "$task" --state failed --state timed-out --page-size 20
