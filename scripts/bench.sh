#!/usr/bin/env bash
# Benchmarks moth side by side with Mosquitto and rumqttd on this machine:
# builds moth and the load generator in release mode, then for several
# interleaved rounds starts each broker fresh for each scenario, runs the
# scenario, stops the broker. Prints the table of medians and writes
# bench/results.md and bench/chart.svg.
#
#   ./scripts/bench.sh                 # all scenarios, 3 rounds
#   ROUNDS=1 SCENARIOS="latency connect" ./scripts/bench.sh
#
# The generator shares the cores with the broker; its CPU use is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-"fanin-qos0 fanin-qos1 fanout-qos0 fanout-qos1 pairs-qos1 latency connect idle"}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v mosquitto >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
# rumqttd: `--locked` fails on this toolchain, so it is not used.
command -v rumqttd >/dev/null || cargo install rumqttd
cargo build --release -q -p moth -p moth-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A PORT=([moth]=18831 [mosquitto]=18832 [rumqttd]=18833)
start() {
  case $1 in
    moth) ./target/release/moth -c bench/moth.yaml >/dev/null 2>&1 & ;;
    mosquitto) mosquitto -c bench/mosquitto.conf >/dev/null 2>&1 & ;;
    rumqttd) RUST_LOG=error rumqttd -c bench/rumqttd.toml >/dev/null 2>&1 & ;;
  esac
  BROKER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$1]}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$1 did not start" >&2; return 1
}
stop() { kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }

out=$(mktemp)
for round in $(seq "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    for broker in moth mosquitto rumqttd; do
      start "$broker"
      ./target/release/loadgen run --broker "$broker" --addr "127.0.0.1:${PORT[$broker]}" --pid "$BROKER_PID" \
        --scenario "$scenario" --connections "$IDLE_CONNECTIONS" --sources 8 | tee -a "$out" || true
      stop
    done
  done
  echo "== round $round done" >&2
done
./target/release/loadgen report "$out" --markdown bench/results.md --svg bench/chart.svg
echo "raw results: $out" >&2
