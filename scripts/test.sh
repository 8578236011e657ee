#!/usr/bin/env bash
# Sets up what the tests need and runs them all: format, lints, unit and
# end-to-end suites (cargo lambda watch/invoke, Runtime API stand-in,
# LocalStack for the worker), Lambda packaging, bench smoke, docs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
total_start=$(date +%s)

stage "install tools (cargo-lambda $CARGO_LAMBDA_VERSION, LocalStack)"
install_cargo_lambda
install_localstack
install_infra_tools

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "build release binary"
build_release
ls -l "$SQSRT_BIN"

stage "start LocalStack (SQS) on 127.0.0.1"
logs="$(mktemp -d)"
trap 'kill "${LOCALSTACK_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
start_localstack "$(free_port)" "$logs/localstack.log"
echo "LocalStack at $SQSRT_LOCALSTACK_ENDPOINT (log: $logs/localstack.log)"

stage "cargo test (unit, adapter, end-to-end: Lambda and worker)"
cargo test --workspace --locked --no-fail-fast

stage "infra: kustomize, kubernetes-validate, cfn-lint, yamllint, consistency vs a real /metrics scrape"
scrape_worker_metrics "$logs/metrics.txt"
"$INFRA_VENV/bin/python" infra/check.py --metrics-file "$logs/metrics.txt"

stage "Lambda packaging: cargo lambda build --release --arm64, deploy --dry"
cargo lambda build --release --arm64 --locked --bin sqsrt --output-format zip
zip="$CARGO_TARGET_DIR/lambda/sqsrt/bootstrap.zip"
python3 - "$zip" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.namelist() == ["bootstrap"], z.namelist()
head = z.read("bootstrap")[:20]
assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183, "bootstrap is not an aarch64 ELF"
print(f"{sys.argv[1]}: bootstrap, aarch64 ELF, zip {z.fp.seek(0, 2)} bytes")
PY
unzip -o -q "$zip" -d "$CARGO_TARGET_DIR/lambda/sqsrt"
cargo lambda deploy sqsrt --dry --output-format json \
  --binary-path "$CARGO_TARGET_DIR/lambda/sqsrt/bootstrap" >"$CARGO_TARGET_DIR/lambda/deploy-dry.json"
python3 - "$CARGO_TARGET_DIR/lambda/deploy-dry.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
plan = json.loads(text[text.index("{"):])  # cargo-lambda prints a progress line first
config = plan["config"]
assert plan["arch"] == "arm64", plan["arch"]
assert config["runtime"] == "provided.al2023", config
assert (config["memory"], config["timeout"]) == (256, 30), config
print("cargo lambda deploy --dry:", plan["arch"], config["runtime"], config["memory"], "MB", config["timeout"], "s", config["env_var"])
PY

stage "cargo bench smoke (harness runs, no timing)"
cargo bench --locked -p sqsrt-core --bench engine -- --test

stage "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

stage_end
echo "all stages passed in $(( $(date +%s) - total_start ))s"
