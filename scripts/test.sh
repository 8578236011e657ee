#!/usr/bin/env bash
# Sets up what the tests need and runs them all: format, lints, static
# binaries and the container image, unit and end-to-end suites (cargo lambda
# watch/invoke, Runtime API stand-in, LocalStack for the worker), the same
# end-to-end checks on the image's binary and on the aarch64 binary (under
# qemu-user), the own-handler scaffold end to end, the demo, infra validation
# and scans, Lambda packaging, bench smoke, fuzzing (30 s per target), docs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
total_start=$(date +%s)

stage "install tools (cargo-lambda $CARGO_LAMBDA_VERSION, LocalStack, tansu $TANSU_VERSION (Kafka), infra validators, buildah, promtool)"
install_cargo_lambda
install_localstack
install_tansu
install_infra_tools
install_debian_tools

stage "cargo fmt --check"
cargo fmt --all --check
# The bench peers are a workspace of their own (benches/lambda-peers).
cargo fmt --all --check --manifest-path benches/lambda-peers/Cargo.toml

stage "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binary's `kafka` feature (off for library users, on in the release build).
cargo clippy -p sqsrt --features kafka --all-targets --locked -- -D warnings
cargo test -p sqsrt --features kafka --locked --lib -q

stage "build static binaries (x86_64, aarch64 musl) and the Lambda zip"
scripts/build.sh
build_release  # already built: sets SQSRT_BIN to this machine's static binary

stage "container image (buildah, FROM scratch, amd64 + arm64): build, check config and size"
scripts/image.sh

stage "start LocalStack (SQS) on 127.0.0.1"
logs="$(mktemp -d)"
trap stop_localstack EXIT
start_localstack "$logs/localstack.log"
echo "LocalStack at $SQSRT_LOCALSTACK_ENDPOINT (log: $logs/localstack.log)"

stage "cargo test (unit, adapter, end-to-end: Lambda, worker, Lambda on LocalStack through the event source mapping emulator, parity of both modes (short mix), forwarders (HTTP app, tansu Kafka broker); reliability: faults, kill storm of 6 rounds)"
export SQSRT_RELIABILITY_SUMMARY="$logs/reliability.csv"
cargo test --workspace --locked --no-fail-fast

stage "autoscaling simulation, short (KEDA-like scaling of real workers from zero and back; CSV + PNG)"
cargo run --release --locked -q -p sqsrt-e2e --bin autoscale-sim -- --short
print_reliability_summary "$SQSRT_RELIABILITY_SUMMARY"
unset SQSRT_RELIABILITY_SUMMARY

stage "the image's /sqsrt, in the image's root filesystem as UID 65532: Lambda (cargo lambda watch) and worker (LocalStack)"
SQSRT_BIN="$DIST/sqsrt-in-image" cargo test -p sqsrt-e2e --locked --test lambda -- --exact \
  cargo_lambda_invoke_returns_exact_partial_failures_for_every_fixture
SQSRT_BIN="$DIST/sqsrt-in-image" cargo test -p sqsrt-e2e --locked --test worker -- --exact \
  every_outcome_is_settled_as_designed sigterm_under_load_drains_and_loses_nothing

stage "the aarch64 binary (the Lambda deploy architecture) under qemu-user: Lambda fixtures and the worker's outcomes"
cat >"$DIST/sqsrt-aarch64-qemu" <<SH
#!/bin/sh
exec qemu-aarch64 "$DIST/aarch64/sqsrt" "\$@"
SH
chmod +x "$DIST/sqsrt-aarch64-qemu"
SQSRT_BIN="$DIST/sqsrt-aarch64-qemu" cargo test -p sqsrt-e2e --locked --test lambda -- --exact \
  cargo_lambda_invoke_returns_exact_partial_failures_for_every_fixture
SQSRT_BIN="$DIST/sqsrt-aarch64-qemu" cargo test -p sqsrt-e2e --locked --test worker -- --exact \
  every_outcome_is_settled_as_designed

# Budget: ~4 min warm, most of it the two fat-LTO release builds of the new
# crate (its dependencies are shared with sqsrt's in the target dir); 20 min
# covers a cold machine, and a hung step fails the stage instead of CI.
scaffold_budget=1200
stage "your own handler: scripts/scaffold-check.sh (generate, test, invoke, build, image, worker, infra checks, aarch64; budget ${scaffold_budget}s)"
scaffold_start=$(date +%s)
timeout "$scaffold_budget" scripts/scaffold-check.sh
echo "scaffold check: $(( $(date +%s) - scaffold_start ))s of its ${scaffold_budget}s budget"

stage "infra: kustomize, kubernetes-validate, CRD schemas, promtool, checkov, cfn-lint, yamllint, consistency vs a real /metrics scrape"
SQSRT_BIN="$DIST/sqsrt-in-image" scrape_worker_metrics "$logs/metrics.txt"
"$INFRA_VENV/bin/python" infra/check.py --metrics-file "$logs/metrics.txt" --binary "$DIST/sqsrt-in-image"

stage "Lambda packaging: the aarch64 zip, cargo lambda deploy --dry"
cargo lambda deploy sqsrt --dry --output-format json \
  --binary-path "$DIST/aarch64/sqsrt" >"$logs/deploy-dry.json"
python3 scripts/report.py deploy-dry "$logs/deploy-dry.json" arm64 provided.al2023 256 30

stage "cargo bench smoke (harness runs, no timing)"
cargo bench --locked -p sqsrt-core --bench engine -- --test
cargo bench --locked -p sqsrt-lambda --bench adapter -- --test
cargo bench --locked -p sqsrt --bench logging -- --test
cargo bench --locked -p sqsrt-sqs --bench sdk -- --test

stage "end-to-end bench smoke (scripts/bench.sh --smoke: the harness runs, no timing judged)"
stop_localstack  # bench.sh and the demo start their own
scripts/bench.sh --smoke

stage "the demo: README's first command (./scripts/demo.sh), both modes"
scripts/demo.sh

stage "fuzzing (scripts/fuzz.sh: each cargo fuzz target for 30 s; a crash fails)"
scripts/fuzz.sh 30

stage "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

stage_end
echo "all stages passed in $(( $(date +%s) - total_start ))s"
