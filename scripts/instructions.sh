#!/usr/bin/env bash
# User-space instructions per Lambda invocation, counted by valgrind's
# callgrind: repeatable to the instruction for the same binary and event,
# whatever else the machine does (CPU time on this VM varies by +-20 % at
# 10 records). Each column of `lambda-cpu` runs under callgrind twice, with
# N and 3N invocations after the same warm-ups; the difference divided by 2N
# is one invocation's count, start-up excluded. The kernel's share (most of
# the floor's CPU: TCP on loopback) is not counted: see docs/performance.md.
#   ./scripts/instructions.sh [SIZES] [N]   (default: 10,1000 and 100)
#   SQSRT_BIN=path/to/sqsrt ./scripts/instructions.sh ...   (another build of
#   sqsrt, e.g. main's, for a before/after; otherwise this checkout's)
# Needs valgrind (Debian's package). Profiles of each run are left in
# $CARGO_TARGET_DIR/instructions/ for callgrind_annotate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
sizes="${1:-10,1000}"
n="${2:-100}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
if [ -z "${SQSRT_BIN:-}" ]; then build_release; fi
build_peers
cargo build --release --locked -q -p sqsrt-e2e --bin lambda-cpu
out="$CARGO_TARGET_DIR/instructions"
rm -rf "$out" && mkdir -p "$out/bin"
# One wrapper per column: callgrind in the background, so that when the
# bench kills the wrapper the program runs on, finds the Runtime API gone,
# exits, and callgrind writes its counts.
for program in "$SQSRT_BIN" "$PEERS_DIR"/lambda-{stock,runtime-alone,floor}; do
  name="$(basename "$program")"
  cat >"$out/bin/$name" <<EOF
#!/usr/bin/env bash
valgrind --tool=callgrind --callgrind-out-file="$out/\$PPID.\$\$.$name" "$program" "\$@" 2>/dev/null &
wait
EOF
  chmod +x "$out/bin/$name"
done
count() { # label size invocations -> prints the callgrind total of that run
  local label="$1" size="$2" invocations="$3" before after
  before="$(ls "$out" | wc -l)"
  SQSRT_BIN="$out/bin/sqsrt" "$CARGO_TARGET_DIR/release/lambda-cpu" --peers "$out/bin" \
    --only "$label" --sizes "$size" --runs 1 --warm-up 3 --budget $((size * invocations)) >/dev/null
  # The program exits once the stand-in is gone: wait for its counts.
  for _ in $(seq 100); do
    after="$(ls "$out" | wc -l)"
    [ "$after" -gt "$before" ] && break
    sleep 0.1
  done
  sleep 0.5
  grep -h '^summary:' "$(ls -t "$out"/*.* | grep -v /bin/ | head -1)" | awk '{print $2}'
}
echo "| records | column | instructions per invocation | per record |"
echo "|---|---|---|---|"
for size in ${sizes//,/ }; do
  for label in "sqsrt, 256 MB" "stock pattern" "\`lambda_runtime\` alone" "floor"; do
    one="$(count "$label" "$size" "$n")"
    three="$(count "$label" "$size" $((3 * n)))"
    per=$(( (three - one) / (2 * n) ))
    echo "| $size | $label | $per | $(( per / size )) |"
  done
done
