#!/usr/bin/env bash
# End-to-end benchmarks of the static release binary, printed as one
# markdown table and written to $CARGO_TARGET_DIR/bench/results.md:
# Lambda mode (size, cold start, warm 10 / 10,000-record invocations, RSS,
# Managed Instances: 1-8 concurrent invocations)
# under the project's Runtime API stand-in, and worker mode against
# LocalStack (random-time handler vs c/d, no-op handler, CPU per message
# beside a hand-written aws-sdk-sqs loop's, the http and kafka forwarders
# beside the no-op, RSS, SIGTERM to exit); then CPU
# per Lambda invocation side by side (lambda-cpu: sqsrt at 256 MB and
# 2,048 MB, the stock Rust pattern, lambda_runtime alone, the floor,
# Powertools Python). The criterion suites are `cargo bench`.
#   ./scripts/bench.sh            full run (a few minutes)
#   ./scripts/bench.sh --smoke    tiny counts: checks the harness, not the speed
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
lambda_args=(--starts 20 --invocations 30 --rounds 100)
worker_args=(--messages 3000 --repeat 3)
cpu_args=(--runs 3 --budget 50000)
tansu_profile=release
if [ "${1:-}" = "--smoke" ]; then
  lambda_args=(--starts 2 --invocations 1 --rounds 2)
  worker_args=(--messages 60 --repeat 1)
  cpu_args=(--runs 1 --budget 200 --warm-up 1)
  tansu_profile=debug
fi
install_localstack
install_tansu "$tansu_profile"
install_powertools
build_release
build_peers
cargo build --release --locked -q -p sqsrt-e2e --bin lambda-measure --bin worker-measure --bin sdk-loop --bin lambda-cpu
logs=$(mktemp -d)
trap stop_localstack EXIT
start_localstack "$logs/localstack.log"
out="$CARGO_TARGET_DIR/bench/results.md"
mkdir -p "$(dirname "$out")"
{
  echo "| measure | median (min-max) | target |"
  echo "|---|---|---|"
  "$CARGO_TARGET_DIR/release/lambda-measure" "${lambda_args[@]}" --rows
  "$CARGO_TARGET_DIR/release/worker-measure" "${worker_args[@]}" --rows
} | tee "$out"
cpu_out="$CARGO_TARGET_DIR/bench/lambda-cpu.md"
echo
echo "CPU per Lambda invocation (lambda-cpu):"
"$CARGO_TARGET_DIR/release/lambda-cpu" --peers "$PEERS_DIR" --python "$TOOLS_VENV/bin/python" "${cpu_args[@]}" | tee "$cpu_out"
echo "(written to $out and $cpu_out; machine: $(nproc) CPUs, $(uname -m))"
