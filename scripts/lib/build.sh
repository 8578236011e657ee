# Static release binaries. Sourced by scripts/lib.sh.

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
  # sqsrt's released binary has the Kafka forwarder (`--handler kafka`);
  # SQSRT_FEATURES="" builds it without (to compare sizes).
  if [ "$manifest" = "$SQSRT_ROOT/Cargo.toml" ]; then
    locked=(--locked)
    local features="${SQSRT_FEATURES-kafka}"
    if [ "$bin" = sqsrt ] && [ -n "$features" ]; then locked+=(--features "$features"); fi
  fi
  install_cargo_lambda >/dev/null
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  mkdir -p "$out/$arch"
  cargo lambda build --release "${locked[@]}" --manifest-path "$manifest" --bin "$bin" \
    --target "$triple" --lambda-dir "$lambda_dir" --output-format zip
  cp "$lambda_dir/$bin/bootstrap.zip" "$out/$arch/bootstrap.zip"
  python3 -m zipfile -e "$out/$arch/bootstrap.zip" "$out/$arch"
  mv "$out/$arch/bootstrap" "$out/$arch/$bin"
  chmod 0755 "$out/$arch/$bin"
}

# The one release binary every end-to-end suite and the demo use: the static
# build for this machine's architecture, the same file the image ships.
build_release() {
  build_static "$(uname -m)"
  export SQSRT_BIN="$DIST/$(uname -m)/sqsrt"
}
