#!/usr/bin/env bash
# Runs moth's whole test suite on a fresh machine: installs what the tests
# drive (mosquitto clients, Python paho-mqtt), then runs every test of the
# workspace. This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; exit 1
  fi
}

# Debian packages: the mosquitto command-line clients (mosquitto_pub/_sub)
# and curl (the metrics endpoint tests scrape with it).
missing=()
command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python test client: paho-mqtt 2 (its callback API changed in 2.0).
if ! python3 -c 'import sys, paho.mqtt; sys.exit(int(paho.mqtt.__version__.split(".")[0]) < 2)' 2>/dev/null; then
  echo "==> installing paho-mqtt>=2"
  python3 -m pip install --quiet 'paho-mqtt>=2' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'paho-mqtt>=2'
fi

echo "==> cargo test --workspace"
cargo test --workspace "$@"
