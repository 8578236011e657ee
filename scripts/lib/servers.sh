# Local servers the scripts start: LocalStack (SQS) and cargo lambda watch
# (the Runtime API). Both need their port given up front, so a port picked
# free can be taken before they bind it: start_server retries on a new one.
# Sourced by scripts/lib.sh.

# free_port: a port free on 127.0.0.1 now (for a server that takes its
# port up front, use start_server: it retries when the port is taken).
free_port() {
  python3 "$SQSRT_ROOT/scripts/ports.py" free
}

# wait_port PORT: until something accepts connections on 127.0.0.1:PORT (30 s).
wait_port() {
  local port="$1" tries=300
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then echo "nothing listened on 127.0.0.1:$port" >&2; return 1; fi
    sleep 0.1
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server NAME LOG DIR READY CMD...: runs CMD in DIR in the background,
# every "{port}" in it replaced by a port free on 127.0.0.1, output to LOG,
# and waits (60 s) until `READY PORT` succeeds and the listener on the port
# is CMD's own process or a child of it. A server that exits first, or says
# its address is in use (LocalStack logs it and stays up), lost the port to
# another process: it is stopped and started again on a new port, three
# times at most. Sets SERVER_PORT and SERVER_PID.
start_server() {
  local name="$1" log="$2" dir="$3" ready="$4"; shift 4
  local attempt port pid tries
  for attempt in 1 2 3; do
    port=$(python3 "$SQSRT_ROOT/scripts/ports.py" free)
    (cd "$dir" && exec "${@//\{port\}/$port}") >"$log" 2>&1 &
    pid=$!
    tries=600
    while kill -0 "$pid" 2>/dev/null && ! grep -q "Address already in use" "$log"; do
      if "$ready" "$port" && python3 "$SQSRT_ROOT/scripts/ports.py" listens "$port" "$pid"; then
        SERVER_PORT="$port" SERVER_PID="$pid"
        return 0
      fi
      tries=$((tries - 1))
      if [ "$tries" -le 0 ]; then
        echo "$name did not get ready on 127.0.0.1:$port within 60 s; its log:" >&2
        tail -20 "$log" >&2
        stop_pid "$pid"
        return 1
      fi
      sleep 0.1
    done
    stop_pid "$pid"
    echo "$name could not listen on 127.0.0.1:$port (attempt $attempt of 3; taken by another process?)" >&2
  done
  echo "$name did not start; its last log:" >&2
  tail -20 "$log" >&2
  return 1
}

# start_watch LOG DIR [ARGS...]: cargo lambda watch (the Runtime API
# emulator) of the crate in DIR on 127.0.0.1. Sets WATCH_PORT and WATCH_PID.
start_watch() {
  local log="$1" dir="$2"; shift 2
  start_server "cargo lambda watch" "$log" "$dir" port_open \
    cargo lambda watch -A 127.0.0.1 -P "{port}" "$@" || return 1
  WATCH_PORT="$SERVER_PORT" WATCH_PID="$SERVER_PID"
}

localstack_ready() {
  curl -sf "http://127.0.0.1:$1/_localstack/health" 2>/dev/null | grep -q '"sqs": "\(available\|running\)"'
}

# start_localstack LOGFILE: LocalStack (SQS only, without Docker) in the
# background on 127.0.0.1, waits until SQS answers, and points the AWS SDKs
# at it. Sets LOCALSTACK_PID.
# The twisted gateway keeps HTTP connections alive like SQS does; hypercorn's
# answers every request with `Connection: close` (a TCP connect per request:
# 2,000 instead of 3,400 no-op msgs/s here, and the connects in the worker's CPU).
start_localstack() {
  local log="$1"
  start_server LocalStack "$log" "$SQSRT_ROOT" localstack_ready \
    env SERVICES=sqs GATEWAY_LISTEN="127.0.0.1:{port}" GATEWAY_SERVER=twisted \
    SQS_ENDPOINT_STRATEGY=off LOCALSTACK_HOST="127.0.0.1:{port}" DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 \
    DISABLE_EVENTS=1 LOCALSTACK_TELEMETRY_DISABLED=1 \
    "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main || return 1
  LOCALSTACK_PID="$SERVER_PID"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$SERVER_PORT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  export SQSRT_LOCALSTACK_ENDPOINT="$AWS_ENDPOINT_URL"
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s (LocalStack's shutdown can
# hang, and a trap must not).
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$1" 2>/dev/null || true
}

# Stops the LocalStack started by start_localstack.
stop_localstack() {
  [ -n "${LOCALSTACK_PID:-}" ] || return 0
  stop_pid "$LOCALSTACK_PID"
}

# SQS admin (create queues, send, count) with LocalStack's own boto3.
sqs_admin() {
  "$LOCALSTACK_VENV/bin/python" "$SQSRT_ROOT/scripts/sqs_admin.py" "$@"
}
