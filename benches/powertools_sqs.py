"""Powertools for AWS Lambda (Python): CPU per SQS invocation, in-process.

The Python column of `lambda-cpu` (docs/performance.md, "CPU per
invocation"). Each invocation does what Lambda's Python runtime and a
Powertools function do with the payload: `json.loads` of the event, a
`BatchProcessor` over its records with a record handler that decodes each
body with `json.loads`, `process_partial_response`, and `json.dumps` of the
answer. No Runtime API and no HTTP: the Rust rows pay for those, this one
does not. Prints one JSON line per size: {"records": N, "cpu_ns": [per run]}.
"""

import argparse
import json
import time

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)


def record_handler(record):
    json.loads(record.body)


def invoke(processor, payload):
    event = json.loads(payload)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=None
    )
    if response["batchItemFailures"]:
        raise SystemExit(f"unexpected failures: {response}")
    return json.dumps(response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", required=True, help="tests/fixtures/bench-record.json")
    parser.add_argument("--sizes", default="10,100,1000,5000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=int, default=50_000, help="records per measured window")
    parser.add_argument("--warm-up", type=int, default=3)
    args = parser.parse_args()

    with open(args.fixture, encoding="utf-8") as f:
        template = json.load(f)
    processor = BatchProcessor(event_type=EventType.SQS)
    for n in (int(s) for s in args.sizes.split(",")):
        records = [dict(template, messageId=f"059f36b4-87a3-44ab-83d2-{i:012}") for i in range(n)]
        payload = json.dumps({"Records": records})
        count = max(args.budget // n, 20)
        runs = []
        for _ in range(args.runs):
            for _ in range(args.warm_up):
                invoke(processor, payload)
            start = time.process_time_ns()
            for _ in range(count):
                invoke(processor, payload)
            runs.append((time.process_time_ns() - start) // count)
        print(json.dumps({"records": n, "cpu_ns": runs}), flush=True)


if __name__ == "__main__":
    main()
