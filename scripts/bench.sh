#!/usr/bin/env bash
# Benchmarks moth side by side with Mosquitto and rumqttd on this machine:
# builds moth and the load generator in release mode, then for several
# interleaved rounds starts each broker fresh for each scenario, runs the
# scenario, stops the broker. Prints the table of medians and writes
# bench/results.md and bench/chart.svg.
#
#   ./scripts/bench.sh                 # all scenarios, 5 rounds
#   ROUNDS=1 SCENARIOS="latency connect" ./scripts/bench.sh
#
# The generator shares the cores with the broker; its CPU use is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
# A `-v5` scenario is the same with MQTT 5 clients (Mosquitto and rumqttd
# speak it too).
# `-persistent`: clients with persistent sessions; `-disk-batch` and
# `-disk-always`: the same against moth with persistence on (that `sync`)
# and Mosquitto with `persistence true`. `restart`: moth with persistence
# filled with RESTART_RETAINED retained messages and RESTART_SESSIONS
# persistent sessions (a queued message each), killed with -9, started
# again: seconds until it answers CONNECT, its memory, the store's size.
RESTART_RETAINED=${RESTART_RETAINED:-1000000}
RESTART_SESSIONS=${RESTART_SESSIONS:-100000}
# `connect-auth-http`: the connect-auth storm against moth whose
# `auth_http` plugin asks a local HTTP service (loadgen's, which answers
# every request at once), each login an HTTP request; its `-warm` row is the
# second storm, answered from the plugin's cache.
SCENARIOS=${SCENARIOS:-"fanin-qos0 fanin-qos0-v5 fanin-qos1 fanin-qos1-v5 fanout-qos0 fanout-qos0-v5 fanout-qos1 fanout-qos1-v5 pairs-qos1 pairs-qos1-v5 fanin-qos1-persistent fanin-qos1-disk-batch fanin-qos1-disk-always pairs-qos1-persistent pairs-qos1-disk-batch pairs-qos1-disk-always latency latency-v5 connect idle idle-v5 connect-auth connect-auth-http restart"}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
AUTH_USERS=${AUTH_USERS:-5000}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v mosquitto >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
# rumqttd: `--locked` fails on this toolchain, so it is not used.
command -v rumqttd >/dev/null || cargo install rumqttd
cargo build --release -q -p moth -p moth-bench -p moth-auth-http
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# connect-auth: AUTH_USERS users user0..N with the password the generator
# sends, in each broker's own format: moth's argon2id (OWASP parameters,
# written by `moth passwd`), Mosquitto's $7$ (written by mosquitto_passwd).
# One hash per file, repeated for every user: each check costs the same.
auth=$PWD/target/bench-auth
mkdir -p "$auth"
./target/release/moth passwd -c -b "$auth/moth.passwd" user0 bench-secret
mosquitto_passwd -c -b "$auth/mosquitto.passwd" user0 bench-secret
for f in moth mosquitto; do
  hash=$(cut -d: -f2- "$auth/$f.passwd")
  for i in $(seq 0 $((AUTH_USERS - 1))); do echo "user$i:$hash"; done > "$auth/$f.passwd.all"
  mv "$auth/$f.passwd.all" "$auth/$f.passwd"
done
# Mosquitto started as root drops to its own user, which must read its file.
chmod 644 "$auth/mosquitto.passwd"
sed "s|^auth:|auth:\n  plugins: [auth_file]\n  password-file: $auth/moth.passwd|; s|allow-anonymous: true|allow-anonymous: false|" \
  bench/moth.yaml > "$auth/moth.yaml"
{ cat bench/mosquitto.conf; echo "password_file $auth/mosquitto.passwd"; } \
  | sed 's/^allow_anonymous true/allow_anonymous false/' > "$auth/mosquitto.conf"

# auth_http against loadgen's HTTP service, for the whole run.
HTTP_PORT=18899
mkdir -p "$auth/plugins"
cp target/release/libmoth_auth_http.so "$auth/plugins/"
./target/release/loadgen http-ok --port "$HTTP_PORT" &
HTTP_PID=$!
trap 'kill "$HTTP_PID" 2>/dev/null || true' EXIT
sed "s|^auth:|plugins-dir: $auth/plugins\nplugins-config:\n  auth_http: {host: 127.0.0.1, port: $HTTP_PORT, user_uri: /user, request_method: post, auth-cache-ttl: 600}\nauth:\n  plugins: [auth_http]|; s|allow-anonymous: true|allow-anonymous: false|" \
  bench/moth.yaml > "$auth/moth-http.yaml"

# Persistence: a fresh store per run, on the disk the repository is on.
store=$PWD/target/bench-store
persist_configs() { # persist_configs SYNC: moth and Mosquitto with their stores emptied
  rm -rf "$store" && mkdir -p "$store/mosquitto"
  chmod 777 "$store/mosquitto"
  { cat bench/moth.yaml; printf 'persistence:\n  enabled: true\n  path: %s/moth\n  sync: %s\n' "$store" "$1"; } \
    > "$store/moth.yaml"
  sed "s|^persistence false|persistence true\npersistence_location $store/mosquitto/|" bench/mosquitto.conf \
    > "$store/mosquitto.conf"
}

declare -A PORT=([moth]=18831 [mosquitto]=18832 [rumqttd]=18833)
start() { # start BROKER [auth]
  case $1${2:+-$2} in
    moth) ./target/release/moth -c bench/moth.yaml >/dev/null 2>&1 & ;;
    moth-auth) ./target/release/moth -c "$auth/moth.yaml" >/dev/null 2>&1 & ;;
    moth-auth-http) ./target/release/moth -c "$auth/moth-http.yaml" >/dev/null 2>&1 & ;;
    mosquitto) mosquitto -c bench/mosquitto.conf >/dev/null 2>&1 & ;;
    mosquitto-auth) mosquitto -c "$auth/mosquitto.conf" >/dev/null 2>&1 & ;;
    moth-disk-*) persist_configs "${2#disk-}"; ./target/release/moth -c "$store/moth.yaml" >/dev/null 2>&1 & ;;
    mosquitto-disk-*) persist_configs "${2#disk-}"; mosquitto -c "$store/mosquitto.conf" >/dev/null 2>&1 & ;;
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

rotate() { # rotate N WORDS...: the words, starting with the (N-1)th modulo their count
  local n=$1; shift
  local words=("$@") k=$(( (n - 1) % $# )) i
  for i in "${!words[@]}"; do printf '%s ' "${words[$(( (i + k) % ${#words[@]} ))]}"; done
}

out=$(mktemp)
for round in $(seq "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    if [ "$scenario" = restart ]; then
      start moth disk-batch
      ./target/release/loadgen fill --addr "127.0.0.1:${PORT[moth]}" \
        --retained "$RESTART_RETAINED" --sessions "$RESTART_SESSIONS" || true
      kill -9 "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
      ./target/release/moth -c "$store/moth.yaml" >/dev/null 2>&1 &
      BROKER_PID=$!
      ./target/release/loadgen ready --broker moth --addr "127.0.0.1:${PORT[moth]}" --pid "$BROKER_PID" \
        --store "$store/moth" | tee -a "$out" || true
      stop
      continue
    fi
    brokers="moth mosquitto rumqttd" mode="" connections=$IDLE_CONNECTIONS
    # rumqttd keeps plain-text passwords in its config: nothing to compare.
    [ "$scenario" = connect-auth ] && brokers="moth mosquitto" mode=auth connections=$AUTH_USERS
    [ "$scenario" = connect-auth-http ] && brokers="moth" mode=auth-http connections=$AUTH_USERS
    # rumqttd keeps nothing on disk.
    case $scenario in *-disk-batch) brokers="moth mosquitto" mode=disk-batch ;; *-disk-always) brokers="moth mosquitto" mode=disk-always ;; esac
    # Each round starts with another broker: the first run after a heavy
    # scenario shares the machine with the kernel still tearing down the
    # last one's sockets, and no broker should always be the one that pays.
    brokers=$(rotate "$round" $brokers)
    for broker in $brokers; do
      start "$broker" $mode
      port=${PORT[$broker]}
      # rumqttd serves MQTT 5 on a listener of its own.
      [ "$broker" = rumqttd ] && [ "${scenario%-v5}" != "$scenario" ] && port=18834
      ./target/release/loadgen run --broker "$broker" --addr "127.0.0.1:$port" --pid "$BROKER_PID" \
        --scenario "$scenario" --connections "$connections" --sources 8 | tee -a "$out" || true
      stop
    done
  done
  echo "== round $round done" >&2
done
./target/release/loadgen report "$out" --markdown bench/results.md --svg bench/chart.svg
echo "raw results: $out" >&2
