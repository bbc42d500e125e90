#!/usr/bin/env bash
# Installs the Debian 12 packages fota needs (only those missing), then
# configures and builds the given CMake preset (default: release).
# Usage: scripts/setup.sh [preset] [ninja targets...]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libcaf-dev librocksdb-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev libfmt-dev prometheus-cpp-dev nlohmann-json3-dev
  libtomlplusplus-dev libhowardhinnant-date-dev tzdata libssl-dev
  libsystemd-dev
  # Tools the suite runs: systemd-analyze verifies the unit file, promtool
  # (Debian ships it only in the prometheus package) checks a real scrape.
  systemd prometheus
  # MQTT: the broker, its clients, the Paho C++ client (fota-mqtt, fota-sim
  # --mqtt, the MQTT end-to-end tests), and
  # the example device (examples/device) with its Python dependencies.
  mosquitto mosquitto-clients libpaho-mqttpp-dev python3-paho-mqtt python3-cryptography
  # Rollout curves: `fotactl task curve --svg` and scripts/bench_plot.sh.
  gnuplot-nox
)
# The fuzz preset builds with clang and links libFuzzer.
if [ "${1:-}" = fuzz ]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # prometheus is here for promtool only: on a host booted with systemd,
  # the server it enables is stopped and disabled again.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

preset="${1:-release}"
shift || true
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" ${1:+--target "$@"}
