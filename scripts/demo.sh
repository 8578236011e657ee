#!/usr/bin/env bash
# The demo: sqsrt in Lambda mode, served by cargo lambda's Runtime API
# emulator, invoked with each fixture under tests/fixtures; prints what each
# record asked for and the partial batch response. Stops all it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"

stage "install tools"
install_cargo_lambda
stage "build release binary"
build_release

stage "start cargo lambda watch and sqsrt"
port=$(free_port)
logs=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" >"$logs/watch.log" 2>&1 &
pids+=($!)
wait_port "$port"
# Best-effort SQS calls (backoff, release) have no SQS here: they fail fast and are logged.
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_MAX_ATTEMPTS=1 AWS_EC2_METADATA_DISABLED=true \
SQSRT_HANDLER=scripted "$SQSRT_BIN" >"$logs/sqsrt.log" 2>&1 &
pids+=($!)
stage_end

for fixture in standard fifo all-fail empty missing-message-id; do
  file="tests/fixtures/$fixture.json"
  echo
  echo "### $fixture.json"
  python3 - "$file" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["Records"]:
    group = r["attributes"].get("MessageGroupId")
    print(f"  {r.get('messageId', '<no messageId>'):40} {('group ' + group) if group else '':12} {r['body']}")
PY
  if out=$(cargo lambda invoke -A 127.0.0.1 -P "$port" --data-file "$file" --output-format json 2>&1); then
    echo "  response: $(echo "$out" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))')"
  else
    echo "  invocation failed (as it must for this event):"
    echo "$out" | sed -n '1,4p' | sed 's/^/    /'
  fi
done

echo
echo "### one log line per record (sqsrt's JSON logs, last invocation of standard.json)"
grep '"outcome"' "$logs/sqsrt.log" | head -8 | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("  " + json.dumps({k: r[k] for k in ("message_id", "outcome", "reason", "request_id") if k in r}))'
