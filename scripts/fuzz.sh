#!/usr/bin/env bash
# cargo fuzz targets (fuzz/): Lambda event decoding, differential against the
# stock aws_lambda_events path, and typed JSON body decoding. Stable Rust:
# built with `--sanitizer none` (libFuzzer's coverage guidance, no ASan).
#   ./scripts/fuzz.sh            each target for 30 s (what CI runs)
#   ./scripts/fuzz.sh 600        each target for 10 minutes
# A crash fails the run and leaves its input in fuzz/artifacts/<target>/;
# turn it into a regression test (crates/lambda/tests/decode.rs) before fixing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT/fuzz"
seconds="${1:-30}"
install_cargo_fuzz
target_dir="$SQSRT_CACHE/fuzz-target"
cargo fuzz build --sanitizer none --target-dir "$target_dir"
for target in event_decode typed_body; do
  corpus="$(mktemp -d)"  # new inputs go here; the committed seeds stay as they are
  echo "fuzzing $target for ${seconds}s (seeds: fuzz/seeds/$target)"
  set +e
  cargo fuzz run "$target" --sanitizer none --target-dir "$target_dir" "$corpus" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 2>&1 \
    | grep -E "^#[0-9]+ +DONE|^Done|^stat::number_of_executed_units|panicked|SUMMARY|artifact|^stock|^fast"
  status=${PIPESTATUS[0]}
  set -e
  rm -rf "$corpus"
  if [ "$status" -ne 0 ]; then
    echo "fuzz target $target failed (exit $status); input saved under fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
