#!/usr/bin/env bash
# The demo, both modes of the one binary:
# 1. Lambda: sqsrt served by cargo lambda's Runtime API emulator, invoked with
#    each fixture under tests/fixtures; prints what each record asked for and
#    the partial batch response.
# 2. Worker: LocalStack (SQS, no Docker) with a queue and its dead-letter
#    queue; a mixed batch sent; `sqsrt worker` run until the queue drains; a
#    summary of what was processed, retried and dead-lettered.
# Stops everything it started.
# Any failing step stops the demo with the step's name and a non-zero status.
set -eEuo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SQSRT_ROOT"
trap 'echo "demo FAILED in step: ${stage_name:-setup} (line $LINENO: $BASH_COMMAND)" >&2' ERR

stage "install tools"
install_cargo_lambda
install_localstack
stage "build release binary"
build_release

stage "start cargo lambda watch and sqsrt"
logs=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_localstack
}
trap cleanup EXIT
start_watch "$logs/watch.log" "$SQSRT_ROOT" --only-lambda-apis
pids+=("$WATCH_PID")
port="$WATCH_PORT"
# Best-effort SQS calls (backoff, release) have no SQS here: they fail fast and are logged.
AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 \
AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
AWS_ENDPOINT_URL=http://127.0.0.1:9 AWS_MAX_ATTEMPTS=1 AWS_EC2_METADATA_DISABLED=true \
SQSRT_HANDLER=scripted "$SQSRT_BIN" >"$logs/sqsrt.log" 2>&1 &
pids+=($!)
stage_end

# fixture:expected (ok: a batch response; error: the invocation fails as a whole)
for entry in standard:ok fifo:ok all-fail:ok empty:ok missing-message-id:error; do
  fixture="${entry%%:*}" expected="${entry##*:}"
  file="tests/fixtures/$fixture.json"
  echo
  echo "### $fixture.json"
  python3 scripts/report.py records "$file"
  stage_name="Lambda: invoke with $fixture.json"
  if out=$(cargo lambda invoke -A 127.0.0.1 -P "$port" --data-file "$file" --output-format json 2>&1); then
    [ "$expected" = ok ] || { echo "  expected the invocation to fail, got: $out" >&2; exit 1; }
    echo "  response: $(echo "$out" | python3 scripts/report.py compact)"
  else
    [ "$expected" = error ] || { echo "  invocation failed: $out" >&2; exit 1; }
    echo "  invocation failed (as it must for this event):"
    echo "$out" | sed -n '1,4p' | sed 's/^/    /'
  fi
done

echo
echo "### one log line per record (sqsrt's JSON logs, last invocation of standard.json)"
# Read by Python directly: `grep | head` under pipefail dies of SIGPIPE when
# grep writes after head has exited.
python3 scripts/report.py outcome-lines "$logs/sqsrt.log" 8

echo
echo "=== Worker mode against LocalStack ==="
stage "start LocalStack (SQS) and create a queue with a dead-letter queue"
start_localstack "$logs/localstack.log"
queues=$(sqs_admin create "demo-$(date +%s)" 3 2)
queue=$(echo "$queues" | sed -n 1p)
dlq=$(echo "$queues" | sed -n 2p)
echo "queue: $queue (visibility 2 s, redrive to the DLQ after 3 receives)"
echo "dlq:   $dlq"
ok=()
for i in $(seq 1 20); do ok+=('{"action":"ok"}'); done
sqs_admin send "$queue" "${ok[@]}" \
  '{"action":"fail","times":1,"retry_after_secs":1}' '{"action":"fail","times":2,"retry_after_secs":1}' \
  '{"action":"reject","reason":"unknown sku"}' 'not json' '{"action":"panic"}' \
  '{"action":"sleep","ms":3000}'
echo "sent 26 messages: 20 ok, 2 that fail then recover, 2 poison, 1 that panics every time, 1 that runs 3 s"
stage "run sqsrt worker until the queue drains"
"$SQSRT_BIN" worker --handler scripted --queue-url "$queue" --dlq-url "$dlq" \
  --metrics-addr 127.0.0.1:0 --retry-base-secs 1 --retry-max-secs 2 >"$logs/worker.log" 2>&1 &
worker=$!
pids+=("$worker")
drained=no
for _ in $(seq 1 600); do
  read -r visible inflight < <(sqs_admin depth "$queue")
  if [ "$visible" = 0 ] && [ "$inflight" = 0 ]; then drained=yes; break; fi
  sleep 0.2
done
[ "$drained" = yes ] || { echo "the queue did not drain in 120 s (visible $visible, in flight $inflight)" >&2; exit 1; }
kill -TERM "$worker"
status=0
wait "$worker" || status=$?
[ "$status" = 0 ] || { echo "the worker exited $status after SIGTERM; its log: $logs/worker.log" >&2; exit 1; }
echo "worker drained and exited 0 after SIGTERM"
stage_end
echo
echo "### summary (from the worker's log lines)"
python3 scripts/report.py worker-summary "$logs/worker.log"
echo "### the dead-letter queue"
stage_name="read the dead-letter queue"
sqs_admin dlq-reasons "$dlq"
echo
echo "demo finished: both modes ran"
