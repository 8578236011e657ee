#!/usr/bin/env bash
# Measures worker mode against LocalStack (throughput, CPU, RSS, SIGTERM to
# exit) and prints a markdown table.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
install_localstack
build_release
logs=$(mktemp -d)
trap 'kill "${LOCALSTACK_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
start_localstack "$(free_port)" "$logs/localstack.log"
cargo run --release --locked -q -p sqsrt-e2e --bin worker-measure -- "$@"
