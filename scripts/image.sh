#!/usr/bin/env bash
# Builds the sqsrt container image (amd64 + arm64, FROM scratch) with buildah,
# without a Docker engine or a registry, into an OCI archive; checks its
# config and size; unpacks this machine's variant as a root filesystem.
# Output: $CARGO_TARGET_DIR/dist/sqsrt-image.oci.tar, dist/rootfs/,
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
for platform in linux/amd64 linux/arm64; do
  # --timestamp 0: the same binaries give the same image digest.
  b bud --quiet --isolation chroot --platform "$platform" --timestamp 0 \
    --manifest "$image" -f "$ctx/Containerfile.prebuilt" "$ctx" >/dev/null
done
rm -f "$archive"
b manifest push --quiet --all "$image" "oci-archive:$archive"

case "$(uname -m)" in x86_64) here=amd64 ;; aarch64) here=arm64 ;; *) here="$(uname -m)" ;; esac
rm -rf "$DIST/rootfs"
python3 infra/container/check_image.py "$archive" --unpack "$here" "$DIST/rootfs"
cat >"$DIST/sqsrt-in-image" <<SH
#!/bin/sh
# The image's entrypoint, run in the image's root filesystem as the image's user.
exec chroot --userspec=65532:65532 "$DIST/rootfs" /sqsrt "\$@"
SH
chmod +x "$DIST/sqsrt-in-image"
