#!/usr/bin/env bash
# Runs moth's whole test suite on a fresh machine: installs what the tests
# drive (mosquitto clients, openssl, Python paho-mqtt, Node.js with MQTT.js,
# Chromium), then runs every test of the workspace and a short fuzz pass
# (scripts/fuzz.sh, which installs cargo-fuzz). This is the README's test
# command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; exit 1
  fi
}

# Debian packages: the mosquitto command-line clients (mosquitto_pub/_sub),
# openssl (RSA test keys), Node.js with npm (MQTT.js), Chromium (the
# browser test), curl (the metrics endpoint tests scrape with it),
# script(1) (a pseudo-terminal for the `moth passwd` prompts) and mosquitto
# (its mosquitto_passwd writes files auth_file must read). Only what is
# missing is installed.
apt_missing=()
command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null || apt_missing+=(mosquitto-clients)
command -v openssl >/dev/null || apt_missing+=(openssl)
command -v node >/dev/null || apt_missing+=(nodejs)
command -v npm >/dev/null || apt_missing+=(npm)
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v curl >/dev/null || apt_missing+=(curl)
command -v script >/dev/null || apt_missing+=(bsdutils) # script(1): a terminal for the `moth passwd` prompt test
command -v mosquitto_passwd >/dev/null || apt_missing+=(mosquitto)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "==> installing ${apt_missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

# MQTT.js for tests/tests/js.rs, from the committed lock file; skipped when
# node_modules already matches it.
if ! cmp -s tests/js/package-lock.json tests/js/node_modules/.moth-installed-lock 2>/dev/null; then
  echo "==> npm ci in tests/js"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.moth-installed-lock)
fi

# Python test client: paho-mqtt 2 (its callback API changed in 2.0).
if ! python3 -c 'import sys, paho.mqtt; sys.exit(int(paho.mqtt.__version__.split(".")[0]) < 2)' 2>/dev/null; then
  echo "==> installing paho-mqtt>=2"
  python3 -m pip install --quiet 'paho-mqtt>=2' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'paho-mqtt>=2'
fi

echo "==> cargo test --workspace"
cargo test --workspace "$@"

# A bounded fuzz pass over the codec from the committed corpus (installs
# cargo-fuzz when missing); a crash fails the run.
./scripts/fuzz.sh 30
