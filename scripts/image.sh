#!/usr/bin/env bash
# Builds a container image (amd64 + arm64, FROM scratch) with buildah,
# without a Docker engine or a registry, into an OCI archive; checks its
# config and size; unpacks this machine's variant as a root filesystem.
#   scripts/image.sh                      # sqsrt's image from $CARGO_TARGET_DIR/dist
#   scripts/image.sh --bin NAME --bin-dir DIR --containerfile PATH   # any crate's binary
# The Containerfile's directory is the build context (with its rootfs/), plus
# the CA bundle and NAME-{amd64,arm64} (from BIN_DIR/{x86_64,aarch64}/NAME).
# Output in BIN_DIR: NAME-image.oci.tar (both architectures),
#   NAME-image-{amd64,arm64}.oci.tar (one each, for Lambda), rootfs/,
#   NAME-in-image (runs the image's /NAME in its rootfs as its user)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bin=sqsrt bin_dir="$DIST" containerfile="$SQSRT_ROOT/infra/container/Containerfile.prebuilt"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --bin-dir) bin_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --containerfile) containerfile="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    *) echo "unknown argument $1 (want --bin NAME, --bin-dir DIR, --containerfile PATH)" >&2; exit 2 ;;
  esac
done
cd "$SQSRT_ROOT"
install_debian_tools
if [ "$bin" = sqsrt ] && [ "$bin_dir" = "$DIST" ]; then
  [ -x "$DIST/x86_64/sqsrt" ] && [ -x "$DIST/aarch64/sqsrt" ] || "$SQSRT_ROOT/scripts/build.sh"
fi
for arch in x86_64 aarch64; do
  [ -x "$bin_dir/$arch/$bin" ] || { echo "no $bin_dir/$arch/$bin: build it with scripts/build.sh first" >&2; exit 1; }
done

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp -r "$(dirname "$containerfile")/." "$ctx/"
cp "$containerfile" "$ctx/Containerfile"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
cp "$bin_dir/x86_64/$bin" "$ctx/$bin-amd64"
cp "$bin_dir/aarch64/$bin" "$ctx/$bin-arm64"

image="localhost/$bin:dev" archive="$bin_dir/$bin-image.oci.tar"
b() { buildah --storage-driver vfs "$@"; }
b manifest rm "$image" >/dev/null 2>&1 || true
b rmi --all --force >/dev/null 2>&1 || true
b manifest create "$image" >/dev/null
for arch in amd64 arm64; do
  # --timestamp 0: the same binaries give the same image digest.
  b bud --quiet --isolation chroot --platform "linux/$arch" --timestamp 0 \
    --manifest "$image" --tag "$image-$arch" -f "$ctx/Containerfile" "$ctx" >/dev/null
  # Lambda accepts only single-architecture images: one archive per architecture too.
  rm -f "$bin_dir/$bin-image-$arch.oci.tar"
  b push --quiet "$image-$arch" "oci-archive:$bin_dir/$bin-image-$arch.oci.tar"
done
rm -f "$archive"
b manifest push --quiet --all "$image" "oci-archive:$archive"

case "$(uname -m)" in x86_64) here=amd64 ;; aarch64) here=arm64 ;; *) here="$(uname -m)" ;; esac
rm -rf "$bin_dir/rootfs"
python3 infra/container/check_image.py "$archive" --entrypoint "/$bin" --unpack "$here" "$bin_dir/rootfs"
for arch in amd64 arm64; do
  python3 infra/container/check_image.py "$bin_dir/$bin-image-$arch.oci.tar" --entrypoint "/$bin" --platforms "$arch" | tail -1
done
cat >"$bin_dir/$bin-in-image" <<SH
#!/bin/sh
# The image's entrypoint, run in the image's root filesystem as the image's user.
exec chroot --userspec=65532:65532 "$bin_dir/rootfs" /$bin "\$@"
SH
chmod +x "$bin_dir/$bin-in-image"

# The SDK reads TLS roots from the image's CA bundle: run the image's worker
# against an https endpoint (a closed loopback port) until its first SQS
# error, and require no "no native root CA certificates" warning. The same
# run on a copy of the rootfs without the bundle must warn (the check can fail).
root_warnings() {  # ROOTFS PORT: prints how many such warnings came before the first SQS error
  local log="$ctx/tls-$RANDOM.log"
  AWS_ENDPOINT_URL="https://127.0.0.1:$2" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
    timeout 8 chroot --userspec=65532:65532 "$1" "/$bin" worker --metrics-addr 127.0.0.1:0 \
    --queue-url "https://127.0.0.1:$2/000000000000/q" 2>&1 | sed '/GetQueueAttributes failed/q' >"$log" || true
  if ! grep -q "GetQueueAttributes failed" "$log"; then
    echo "the image's worker never reached SQS; its output:" >&2
    cat "$log" >&2
    return 1
  fi
  grep -c "no native root CA certificates" "$log" || true
}
closed_port=$(free_port)
cp -a "$bin_dir/rootfs" "$ctx/no-certs"
rm "$ctx/no-certs/etc/ssl/certs/ca-certificates.crt"
with_bundle=$(root_warnings "$bin_dir/rootfs" "$closed_port")
without_bundle=$(root_warnings "$ctx/no-certs" "$closed_port")
if [ "$with_bundle" != 0 ] || [ "$without_bundle" = 0 ]; then
  echo "TLS roots: warnings with the image's bundle $with_bundle (want 0), without it $without_bundle (want > 0)" >&2
  exit 1
fi
echo "TLS roots: the image's CA bundle is loaded by the SDK (and its absence is detected)"
