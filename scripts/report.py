"""What the scripts print and check from sqsrt's output: JSON log lines,
Lambda answers, `cargo lambda deploy --dry` plans, the reliability CSV.
Each subcommand prints a short report and exits non-zero (with the reason)
when a check fails.

  report.py records FIXTURE             a Lambda event's records, one per line
  report.py compact                     stdin's JSON on one line
  report.py outcome-lines LOG [N]       the first N outcome lines of a log (8)
  report.py worker-summary LOG          outcome counts, retried and recovered
  report.py worker-outcomes LOG LABEL success=2 permanent=1
                                        fails unless the log's outcome counts are these
  report.py batch-failures ANSWER WANT  fails unless the answer's batchItemFailures
                                        ids are the JSON list WANT
  report.py deploy-dry FILE arm64 provided.al2023 256 30 [Active]
                                        fails unless the plan's arch, runtime,
                                        memory, timeout (and tracing) are these
  report.py reliability CSV             the reliability rows as one markdown
                                        table; fails if a row lost a message or
                                        deleted one before its success
"""

import collections
import csv
import json
import sys


def log_lines(path):
    return [json.loads(line) for line in open(path) if line.startswith("{")]


def records(fixture):
    for r in json.load(open(fixture))["Records"]:
        group = r["attributes"].get("MessageGroupId")
        group_text = ("group " + group) if group else ""
        print(f"  {r.get('messageId', '<no messageId>'):40} {group_text:12} {r['body']}")


def compact():
    print(json.dumps(json.load(sys.stdin)))


def outcome_lines(path, count="8"):
    lines = [line for line in log_lines(path) if "outcome" in line]
    if not lines:
        sys.exit(f"no outcome lines in {path}")
    keys = ("message_id", "outcome", "reason", "request_id")
    for r in lines[: int(count)]:
        print("  " + json.dumps({k: r[k] for k in keys if k in r}))


def worker_summary(path):
    lines = log_lines(path)
    outcomes = collections.Counter(line["outcome"] for line in lines if "outcome" in line)
    retried = {line["message_id"] for line in lines if line.get("outcome") == "retry"}
    succeeded = {line["message_id"] for line in lines if line.get("outcome") == "success"}
    print(f"  processed: {sum(outcomes.values())} outcome lines: {dict(outcomes)}")
    print(f"  retried: {len(retried)} messages, of which {len(succeeded & retried)} later succeeded")
    print(f"  dead-lettered by sqsrt (permanent): {outcomes['permanent']}")


def worker_outcomes(path, label, *want):
    outcomes = collections.Counter(line["outcome"] for line in log_lines(path) if "outcome" in line)
    expected = {k: int(v) for k, v in (w.split("=") for w in want)}
    print(f"  {label} worker outcomes: {dict(outcomes)}")
    if outcomes != expected:
        sys.exit(f"want {expected}")


def batch_failures(answer, want):
    got = [f["itemIdentifier"] for f in json.loads(answer)["batchItemFailures"]]
    print(f"  batchItemFailures: {got}")
    if got != json.loads(want):
        sys.exit(f"want {want}")


def deploy_dry(path, arch, runtime, memory, timeout, tracing=None):
    text = open(path).read()
    plan = json.loads(text[text.index("{"):])  # cargo-lambda prints a progress line first
    config = plan["config"]
    got = [plan["arch"], config["runtime"], config["memory"], config["timeout"]]
    want = [arch, runtime, int(memory), int(timeout)]
    if tracing is not None:
        got.append(config["tracing"])
        want.append(tracing)
    print("  cargo lambda deploy --dry:", *got, config.get("env_var", ""))
    if got != want:
        sys.exit(f"want {want}")


def reliability(path):
    header = ["suite", "rounds", "kills", "faults injected", "messages sent", "succeeded",
              "dead-lettered", "lost", "deleted before success", "duplicates"]
    rows = [r for r in csv.reader(open(path)) if r]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    bad = [r[0] for r in rows if r[7] != "0" or r[8] != "0"]
    if not rows or bad:
        sys.exit(f"reliability summary: {'no rows' if not rows else 'losses in ' + ', '.join(bad)}")


COMMANDS = {
    "records": records,
    "compact": compact,
    "outcome-lines": outcome_lines,
    "worker-summary": worker_summary,
    "worker-outcomes": worker_outcomes,
    "batch-failures": batch_failures,
    "deploy-dry": deploy_dry,
    "reliability": reliability,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
