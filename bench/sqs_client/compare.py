#!/usr/bin/env python3
"""Drives the SQS client benchmark against an SQS endpoint (run.sh starts
moto and sets AWS_ENDPOINT_URL_SQS and credentials).

moto's SendMessage cost grows with the queue's length (preloading 800
messages takes four times as long as 400), so the N messages are preloaded
and drained in rounds of --per-round. In each round both queues get the same
number of messages, then our client (sqs_client_bench, which times its own
loop) and boto3 (the same receive(10) + DeleteMessageBatch loop, timed here)
drain their queue. Only the draining is timed; the totals are printed side by
side.

Usage: compare.py SQS_CLIENT_BENCH --messages N [--per-round R]
"""
import argparse
import json
import subprocess
import sys
import time

import boto3


def preload(sqs, url, start, count):
    for first in range(start, start + count, 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps({"file": f"f{i}.csv", "n": i})}
                   for i in range(first, min(first + 10, start + count))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def drain_with_boto3(sqs, url, expected):
    deleted = calls = empty_in_a_row = 0
    received = 0
    start, cpu_start = time.monotonic(), time.process_time()
    while received < expected and empty_in_a_row < 3:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                    WaitTimeSeconds=0)
        calls += 1
        messages = reply.get("Messages", [])
        if not messages:
            empty_in_a_row += 1
            continue
        empty_in_a_row = 0
        received += len(messages)
        result = sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)])
        calls += 1
        deleted += len(result.get("Successful", []))
    return {"deleted": deleted, "calls": calls, "seconds": time.monotonic() - start,
            "cpu_seconds": time.process_time() - cpu_start}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bench")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--per-round", type=int, default=250)
    args = parser.parse_args()
    sqs = boto3.client("sqs")
    cpp_url = sqs.create_queue(QueueName="bench-cpp")["QueueUrl"]
    boto_url = sqs.create_queue(QueueName="bench-boto3")["QueueUrl"]
    totals = {"cruncher C++": {"deleted": 0, "calls": 0, "seconds": 0.0, "cpu_seconds": 0.0},
              f"boto3 {boto3.__version__}": {"deleted": 0, "calls": 0, "seconds": 0.0, "cpu_seconds": 0.0}}
    cpp_total, boto_total = totals.values()
    done = 0
    while done < args.messages:
        count = min(args.per_round, args.messages - done)
        preload(sqs, cpp_url, done, count)
        preload(sqs, boto_url, done, count)
        out = subprocess.run([args.bench, cpp_url, str(count)], check=True,
                             capture_output=True, text=True).stdout
        cpp = json.loads(out)
        boto = drain_with_boto3(sqs, boto_url, count)
        for total, r in ((cpp_total, cpp), (boto_total, boto)):
            for k in ("deleted", "calls", "seconds", "cpu_seconds"):
                total[k] += r[k]
        done += count
    print(f"{args.messages} messages in rounds of {args.per_round}; "
          "receive(10) + DeleteMessageBatch; draining time only")
    print(f"{'client':<18} {'deleted':>8} {'calls':>7} {'seconds':>8} {'msgs/s':>9} "
          f"{'client CPU s':>13} {'CPU us/msg':>11}")
    for name, t in totals.items():
        print(f"{name:<18} {t['deleted']:>8} {t['calls']:>7} {t['seconds']:>8.2f} "
              f"{t['deleted'] / t['seconds']:>9.1f} {t['cpu_seconds']:>13.2f} "
              f"{1e6 * t['cpu_seconds'] / t['deleted']:>11.0f}")
    rate = [t["deleted"] / t["seconds"] for t in totals.values()]
    print(f"ratio C++/boto3: {rate[0] / rate[1]:.2f}x")
    ok = all(t["deleted"] == args.messages for t in totals.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
