"""Small SQS admin for the demo: create queues with a redrive policy, send
scripted messages, report queue depths. Uses the AWS_* environment."""

import json
import sys
import time

import boto3

sqs = boto3.client("sqs")


def create(name, max_receive="3", visibility="5"):
    """Creates NAME-dlq and NAME with a redrive policy; prints both URLs."""
    fifo = name.endswith(".fifo")
    base = name[: -len(".fifo")] if fifo else name
    dlq_name = f"{base}-dlq.fifo" if fifo else f"{base}-dlq"
    extra = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=dlq_name, Attributes=extra)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attrs = dict(extra, VisibilityTimeout=visibility,
                 RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}))
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    print(url)
    print(dlq)


def send(url, *bodies):
    """Sends each body (JSON text) to URL, in batches of ten."""
    fifo = url.endswith(".fifo")
    for start in range(0, len(bodies), 10):
        entries = []
        for i, body in enumerate(bodies[start:start + 10]):
            entry = {"Id": str(i), "MessageBody": body}
            if fifo:
                entry["MessageGroupId"] = json.loads(body).get("group", "default")
                entry["MessageDeduplicationId"] = f"{time.time_ns()}-{start + i}"
            entries.append(entry)
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
        if failed:
            sys.exit(f"send failed: {failed}")


def depth(url):
    """Prints visible and in-flight counts."""
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    print(a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"])


def dlq_reasons(url):
    """Receives everything in a DLQ and prints id, reason per message."""
    seen = 0
    while True:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not out:
            break
        for m in out:
            attrs = m.get("MessageAttributes", {})
            reason = attrs.get("sqsrt.reason", {}).get("StringValue", "(moved by the redrive policy)")
            print(f"  {m['Body']:45} reason: {reason}")
            seen += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    print(f"  {seen} message(s) in the dead-letter queue")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"create": create, "send": send, "depth": depth, "dlq-reasons": dlq_reasons}[command](*args)
