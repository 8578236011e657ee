#!/usr/bin/env bash
# Builds what sqsrt ships: static (musl) binaries for x86_64 and aarch64, and
# the Lambda zip (aarch64, for provided.al2023 on Graviton).
# Output: $CARGO_TARGET_DIR/dist/{x86_64,aarch64}/sqsrt, dist/aarch64/bootstrap.zip
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
install_cargo_lambda >/dev/null
for arch in x86_64 aarch64; do
  build_static "$arch"
done
python3 "$SQSRT_ROOT/scripts/describe_binaries.py" "$DIST"
