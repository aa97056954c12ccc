#!/usr/bin/env bash
# A bounded fuzz pass over the codec and the session state machine
# (broker/protocol/fuzz): each target runs
# SECONDS seconds (default 30) from the committed corpus, with no sanitizer
# (`-s none`, which stable Rust allows; safe Rust's bugs are panics, which
# libFuzzer catches). New inputs go to a scratch directory, so the committed
# corpus changes only when someone copies findings in on purpose. A crash
# fails the script and leaves its input under target/fuzz-artifacts/.
#
#   ./scripts/fuzz.sh          # 30 s per target (the test command runs this)
#   ./scripts/fuzz.sh 3600     # a long pass
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-30}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
artifacts=$PWD/target/fuzz-artifacts
mkdir -p "$artifacts"
cd broker/protocol/fuzz
for target in decode connect session; do
  scratch=$(mktemp -d)
  echo "==> fuzz $target for ${SECONDS_PER_TARGET}s"
  log=$scratch.log
  if ! cargo fuzz run -s none "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -artifact_prefix="$artifacts/$target-" \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed; its input is in $artifacts" >&2
    exit 1
  fi
  grep -E "^Done|number_of_executed_units" "$log" || true
  rm -rf "$scratch" "$log"
done
