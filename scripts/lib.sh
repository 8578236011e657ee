# Shared by the scripts: cache locations, tool install, stage timing.
# Sourced, not run.

SQSRT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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

# The one release binary every end-to-end suite and the demo use.
build_release() {
  cargo build --release --locked -p sqsrt
  export SQSRT_BIN="$CARGO_TARGET_DIR/release/sqsrt"
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
