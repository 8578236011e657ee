#!/usr/bin/env bash
# Builds static (musl) binaries for x86_64 and aarch64 and the Lambda zip
# (aarch64, for provided.al2023 on Graviton), of sqsrt or of any crate's binary:
#   scripts/build.sh                                     # sqsrt -> $CARGO_TARGET_DIR/dist
#   scripts/build.sh --manifest-path PATH/Cargo.toml --bin NAME --out DIR
# Output: OUT/{x86_64,aarch64}/NAME, OUT/{x86_64,aarch64}/bootstrap.zip
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bin=sqsrt manifest="$SQSRT_ROOT/Cargo.toml" out="$DIST"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --manifest-path) manifest="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    --out) mkdir -p "$2"; out="$(cd "$2" && pwd)"; shift 2 ;;
    *) echo "unknown argument $1 (want --bin NAME, --manifest-path PATH, --out DIR)" >&2; exit 2 ;;
  esac
done
install_cargo_lambda >/dev/null
for arch in x86_64 aarch64; do
  build_static "$arch" "$bin" "$manifest" "$out"
done
python3 "$SQSRT_ROOT/scripts/describe_binaries.py" "$out" "$bin"
