# What the scripts print and check from the suites' output. Sourced by
# scripts/lib.sh; the Python is scripts/report.py.

# print_reliability_summary FILE: the rows the reliability suites appended
# (tests/src/summary.rs) as one markdown table; fails if any row lost a
# message or deleted one before its success.
print_reliability_summary() {
  python3 "$SQSRT_ROOT/scripts/report.py" reliability "$1"
}

# scrape_worker_metrics FILE: runs the release worker against a fresh
# LocalStack queue just long enough to save a real /metrics scrape.
# The worker binds port 0 and logs the address it got (no port reuse race).
scrape_worker_metrics() {
  local out="$1" queue addr="" pid
  queue=$(sqs_admin create "scrape-$(date +%s%N)" 3 30 | sed -n 1p)
  "$SQSRT_BIN" worker --queue-url "$queue" --metrics-addr 127.0.0.1:0 >"$out.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    addr=$(sed -n 's/.*"metrics_addr":"\([0-9.:]*\)".*/\1/p;T;q' "$out.log")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "the worker logged no metrics_addr; its log:" >&2; cat "$out.log" >&2; return 1; }
  curl -sf "http://$addr/metrics" >"$out"
  kill -TERM "$pid"
  wait "$pid"
}
