#!/usr/bin/env bash
# Builds the sqsrt container image (amd64 + arm64, FROM scratch) with buildah,
# without a Docker engine or a registry, into an OCI archive; checks its
# config and size; unpacks this machine's variant as a root filesystem.
# Output: $CARGO_TARGET_DIR/dist/sqsrt-image.oci.tar (both architectures),
#         dist/sqsrt-image-{amd64,arm64}.oci.tar (one each, for Lambda), dist/rootfs/,
#         dist/sqsrt-in-image (runs the image's /sqsrt in its rootfs as its user)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
install_debian_tools
[ -x "$DIST/x86_64/sqsrt" ] && [ -x "$DIST/aarch64/sqsrt" ] || "$SQSRT_ROOT/scripts/build.sh"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp -r infra/container/Containerfile.prebuilt infra/container/rootfs "$ctx/"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
cp "$DIST/x86_64/sqsrt" "$ctx/sqsrt-amd64"
cp "$DIST/aarch64/sqsrt" "$ctx/sqsrt-arm64"

image="localhost/sqsrt:dev" archive="$DIST/sqsrt-image.oci.tar"
b() { buildah --storage-driver vfs "$@"; }
b manifest rm "$image" >/dev/null 2>&1 || true
b rmi --all --force >/dev/null 2>&1 || true
b manifest create "$image" >/dev/null
for arch in amd64 arm64; do
  # --timestamp 0: the same binaries give the same image digest.
  b bud --quiet --isolation chroot --platform "linux/$arch" --timestamp 0 \
    --manifest "$image" --tag "$image-$arch" -f "$ctx/Containerfile.prebuilt" "$ctx" >/dev/null
  # Lambda accepts only single-architecture images: one archive per architecture too.
  rm -f "$DIST/sqsrt-image-$arch.oci.tar"
  b push --quiet "$image-$arch" "oci-archive:$DIST/sqsrt-image-$arch.oci.tar"
done
rm -f "$archive"
b manifest push --quiet --all "$image" "oci-archive:$archive"

case "$(uname -m)" in x86_64) here=amd64 ;; aarch64) here=arm64 ;; *) here="$(uname -m)" ;; esac
rm -rf "$DIST/rootfs"
python3 infra/container/check_image.py "$archive" --unpack "$here" "$DIST/rootfs"
for arch in amd64 arm64; do
  python3 infra/container/check_image.py "$DIST/sqsrt-image-$arch.oci.tar" --platforms "$arch" | tail -1
done
cat >"$DIST/sqsrt-in-image" <<SH
#!/bin/sh
# The image's entrypoint, run in the image's root filesystem as the image's user.
exec chroot --userspec=65532:65532 "$DIST/rootfs" /sqsrt "\$@"
SH
chmod +x "$DIST/sqsrt-in-image"

# The SDK reads TLS roots from the image's CA bundle: run the image's worker
# against an https endpoint (a closed loopback port) until its first SQS
# error, and require no "no native root CA certificates" warning. The same
# run on a copy of the rootfs without the bundle must warn (the check can fail).
root_warnings() {  # ROOTFS PORT: prints how many such warnings came before the first SQS error
  local log="$ctx/tls-$RANDOM.log"
  AWS_ENDPOINT_URL="https://127.0.0.1:$2" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
    timeout 8 chroot --userspec=65532:65532 "$1" /sqsrt worker --metrics-addr 127.0.0.1:0 \
    --queue-url "https://127.0.0.1:$2/000000000000/q" 2>&1 | sed '/GetQueueAttributes failed/q' >"$log" || true
  if ! grep -q "GetQueueAttributes failed" "$log"; then
    echo "the image's worker never reached SQS; its output:" >&2
    cat "$log" >&2
    return 1
  fi
  grep -c "no native root CA certificates" "$log" || true
}
closed_port=$(free_port)
cp -a "$DIST/rootfs" "$ctx/no-certs"
rm "$ctx/no-certs/etc/ssl/certs/ca-certificates.crt"
with_bundle=$(root_warnings "$DIST/rootfs" "$closed_port")
without_bundle=$(root_warnings "$ctx/no-certs" "$closed_port")
if [ "$with_bundle" != 0 ] || [ "$without_bundle" = 0 ]; then
  echo "TLS roots: warnings with the image's bundle $with_bundle (want 0), without it $without_bundle (want > 0)" >&2
  exit 1
fi
echo "TLS roots: the image's CA bundle is loaded by the SDK (and its absence is detected)"
