#!/usr/bin/env bash
# Runs the function locally behind cargo lambda's Runtime API emulator and
# invokes it with events/orders.json (or the event file given), printing the
# partial batch response and the function's log lines. Needs cargo-lambda.
set -euo pipefail
cd "$(dirname "$0")/.."
event="${1:-events/orders.json}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp)
cargo lambda watch -A 127.0.0.1 -P "$port" >"$log" 2>&1 &
watch=$!
trap 'kill $watch 2>/dev/null || true; wait $watch 2>/dev/null || true' EXIT
# The first invocation waits for the build; cargo lambda watch compiles on demand.
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$watch" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
cargo lambda invoke -A 127.0.0.1 -P "$port" --data-file "$event" --output-format json
echo
grep '"outcome"' "$log" || true
