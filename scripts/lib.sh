# Shared by the scripts, sourced (not run): cache locations, stage timing,
# and one file per concern under scripts/lib/: tools.sh (installs, cached
# outside the clone), build.sh (static binaries), servers.sh (LocalStack,
# cargo lambda watch, ports), report.sh (summaries and scrapes; their
# Python is scripts/report.py).

SQSRT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Each script knows only the LocalStack it started itself (stop_localstack
# must never stop a caller's): a value inherited from the environment is dropped.
unset LOCALSTACK_PID
export SQSRT_ROOT
SQSRT_CACHE="${SQSRT_CACHE:-$HOME/.cache/sqsrt}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SQSRT_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

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

for part in tools build servers report; do
  # shellcheck source=/dev/null
  source "$SQSRT_ROOT/scripts/lib/$part.sh"
done
