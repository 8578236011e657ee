#!/usr/bin/env bash
# Creates a new handler crate, offline, from templates/handler through
# `cargo lambda new --template` (no questions asked):
#   scripts/new-handler.sh NAME [--dir PARENT] [--sqsrt PATH_OR_GIT_URL]
# NAME: lowercase letters, digits and dashes (it names the crate, the binary,
# the image, the queue and the Kubernetes namespace). --sqsrt: where the crate
# gets sqsrt (a checkout's path or a git URL; default: this checkout).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
install_cargo_lambda >/dev/null
exec python3 "$SQSRT_ROOT/scripts/new_handler.py" "$@"
