#!/usr/bin/env bash
# The reliability suite in full: faults between the worker and SQS (a 30 s
# outage), a kill storm of 40 rounds over three workers, the parity of the
# worker and Lambda under the event source mapping emulator over the long
# mix (150 messages), the autoscaling simulation (writes docs/autoscale.csv
# and .png for README), and each fuzz target for 2 minutes. CI runs the same
# suites shortened (`scripts/test.sh`).
#   ./scripts/reliability.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
install_cargo_lambda
install_localstack
build_release
logs=$(mktemp -d)
trap stop_localstack EXIT
start_localstack "$logs/localstack.log"
export SQSRT_RELIABILITY_SUMMARY="$logs/reliability.csv"
SQSRT_FAULT_OUTAGE_SECS=30 cargo test --locked -p sqsrt-e2e --test faults -- --nocapture
SQSRT_KILL_ROUNDS=40 cargo test --locked -p sqsrt-e2e --test kill_storm -- --nocapture
SQSRT_PARITY_SCALE=10 cargo test --locked -p sqsrt-e2e --test parity -- --nocapture
cargo run --release --locked -q -p sqsrt-e2e --bin autoscale-sim -- --out "$SQSRT_ROOT/docs"
stop_localstack
scripts/fuzz.sh 120
echo
print_reliability_summary "$SQSRT_RELIABILITY_SUMMARY" | tee "$CARGO_TARGET_DIR/reliability-summary.md"
