#!/usr/bin/env bash
# Sets up what the tests need and runs them all: format, lints, unit and
# end-to-end suites (cargo lambda watch/invoke, Runtime API stand-in), docs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
total_start=$(date +%s)

stage "install tools (cargo-lambda $CARGO_LAMBDA_VERSION)"
install_cargo_lambda

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "build release binary"
build_release
ls -l "$SQSRT_BIN"

stage "cargo test (unit, adapter, end-to-end)"
cargo test --workspace --locked --no-fail-fast

stage "cargo bench smoke (harness runs, no timing)"
cargo bench --locked -p sqsrt-core --bench engine -- --test

stage "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

stage_end
echo "all stages passed in $(( $(date +%s) - total_start ))s"
