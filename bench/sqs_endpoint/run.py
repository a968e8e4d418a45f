#!/usr/bin/env python3
"""Benchmark: the local SQS endpoint vs moto_server on the same workload.

Each run creates a queue, then 8 client processes (one keep-alive HTTP
connection each, speaking the SQS JSON protocol with python's http.client,
the same code for both servers) send N messages with SendMessageBatch
(10 per call), then receive them with ReceiveMessage (MaxNumberOfMessages=10)
and delete them with DeleteMessageBatch until the queue is empty. It prints
the seconds per phase and messages/s (N / total time) for both servers and
the ratio.

Usage: bench/sqs_endpoint/run.py [--server PATH] [--messages 50000]
                                 [--moto-messages 5000] [--clients 8]
                                 [--durability full|normal]
                                 [--baseline-server PATH] [--rounds 3]
The server defaults to build/tests/sqs_endpoint/cruncher_sqs_endpoint_test_server.
moto keeps all messages in one list and scans it on every receive, so it gets
a smaller count by default; the rates are what is compared.

With --baseline-server (the test server built from an older commit), both
builds run the endpoint workload --rounds times each, alternating, each on
its own data directory, and the medians are compared: a change's cost is
measured side by side in one run, under the same load, not against a figure
from another day.
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SERVER = os.path.join(HERE, "..", "..", "build", "tests", "sqs_endpoint",
                              "cruncher_sqs_endpoint_test_server")
HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    # Neither server checks signatures by default; a syntactically valid
    # header keeps both on their normal path.
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/"
                     "sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
    "X-Amz-Date": "20260101T000000Z",
}


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.calls = 0

    def call(self, op, body):
        headers = dict(HEADERS, **{"X-Amz-Target": "AmazonSQS." + op})
        self.conn.request("POST", "/", json.dumps(body), headers)
        resp = self.conn.getresponse()
        data = resp.read()
        self.calls += 1
        if resp.status != 200:
            raise RuntimeError(f"{op}: HTTP {resp.status}: {data[:300]!r}")
        return json.loads(data) if data else {}


def sender(port, url, first, count, start, out):
    c = Client(port)
    start.wait()
    for base in range(first, first + count, 10):
        n = min(10, first + count - base)
        entries = [{"Id": f"m{i}", "MessageBody": json.dumps(
            {"target": "127.0.0.1", "duration": "10", "n": base + i})} for i in range(n)]
        r = c.call("SendMessageBatch", {"QueueUrl": url, "Entries": entries})
        if r.get("Failed"):
            raise RuntimeError(f"send failures: {r['Failed']}")
    out.put(("send", count, c.calls))


def receiver(port, url, start, out):
    c = Client(port)
    start.wait()
    deleted = 0
    empty = 0
    while empty < 2:
        r = c.call("ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10,
                                      "VisibilityTimeout": 600, "WaitTimeSeconds": 0})
        msgs = r.get("Messages", [])
        if not msgs:
            empty += 1
            continue
        empty = 0
        entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(msgs)]
        d = c.call("DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})
        if d.get("Failed"):
            raise RuntimeError(f"delete failures: {d['Failed']}")
        deleted += len(d.get("Successful", []))
    out.put(("recv", deleted, c.calls))


def run_phase(target, args_list):
    start = mp.Barrier(len(args_list) + 1)
    out = mp.Queue()
    procs = [mp.Process(target=target, args=a + (start, out)) for a in args_list]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"client process failed with {p.exitcode}")
    return elapsed, sum(r[1] for r in results), sum(r[2] for r in results)


def workload(name, port, messages, clients):
    c = Client(port)
    url = c.call("CreateQueue", {"QueueName": f"bench-{int(time.time() * 1000)}",
                                 "Attributes": {"VisibilityTimeout": "600"}})["QueueUrl"]
    per = messages // clients
    send_args = [(port, url, i * per, per if i < clients - 1 else messages - i * per)
                 for i in range(clients)]
    send_s, sent, send_calls = run_phase(sender, send_args)
    recv_s, deleted, recv_calls = run_phase(receiver, [(port, url)] * clients)
    left = c.call("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["All"]})
    attrs = left.get("Attributes", {})
    remaining = int(attrs.get("ApproximateNumberOfMessages", "0")) + int(
        attrs.get("ApproximateNumberOfMessagesNotVisible", "0"))
    total = send_s + recv_s
    return {"server": name, "messages": messages, "sent": sent, "deleted": deleted,
            "remaining": remaining, "send_s": send_s, "recv_delete_s": recv_s,
            "calls": send_calls + recv_calls, "total_s": total,
            "msgs_per_s": messages / total}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on port {port}")


def start_server(path, durability):
    data = tempfile.mkdtemp(prefix="sqs-bench-")
    port = free_port()
    proc = subprocess.Popen([path, data, str(port), "--durability", durability],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, path)
    return proc, port, data


def compare_builds(args):
    print(f"{args.clients} clients, batches of 10, SQLite durability={args.durability}, "
          f"{args.messages} messages per run, {args.rounds} rounds alternating", flush=True)
    builds = [("baseline", args.baseline_server), ("this build", args.server)]
    rates = {name: [] for name, _ in builds}
    ok = True
    for round_no in range(args.rounds):
        # Alternate which build goes first, so neither always runs on a
        # page cache or disk the other has just warmed.
        order = builds if round_no % 2 == 0 else builds[::-1]
        for name, path in order:
            proc, port, data = start_server(path, args.durability)
            try:
                r = workload(name, port, args.messages, args.clients)
            finally:
                proc.terminate()
                proc.wait()
                shutil.rmtree(data, ignore_errors=True)
            ok = ok and r["deleted"] == r["messages"] and r["remaining"] == 0
            rates[name].append(r["msgs_per_s"])
            print(f"round {round_no + 1} {name:<10} send {r['send_s']:6.2f} s "
                  f"recv+del {r['recv_delete_s']:6.2f} s  {r['msgs_per_s']:8.0f} msgs/s",
                  flush=True)
    med = {name: sorted(v)[len(v) // 2] for name, v in rates.items()}
    print(f"{'build':<10} {'median msgs/s':>14} {'runs':>30}")
    for name, v in rates.items():
        print(f"{name:<10} {med[name]:>14.0f} {' '.join(f'{x:.0f}' for x in v):>30}")
    print(f"this build / baseline: {med['this build'] / med['baseline'] * 100:.1f} %")
    if not ok:
        print("ERROR: a run did not deliver and delete every message exactly once")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=DEFAULT_SERVER)
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--moto-messages", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--durability", choices=["full", "normal"], default="full")
    ap.add_argument("--baseline-server", help="compare with this build instead of moto")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for server in (args.server, args.baseline_server):
        if server is not None and not os.access(server, os.X_OK):
            sys.exit(f"no server binary at {server}; build target "
                     "cruncher_sqs_endpoint_test_server or pass --server")
    if args.baseline_server:
        return compare_builds(args)

    data = tempfile.mkdtemp(prefix="sqs-bench-")
    port = free_port()
    ours = subprocess.Popen([args.server, data, str(port), "--durability", args.durability],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto_port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_port(port, ours, "endpoint")
        wait_port(moto_port, moto, "moto_server")
        print(f"{args.clients} clients, batches of 10, SQLite durability={args.durability}; "
              f"endpoint: {args.messages} messages, moto_server: {args.moto_messages} "
              "messages (moto scans its whole queue on every receive, so it runs a "
              "smaller count; rates are compared)", flush=True)
        rows.append(workload("cruncher endpoint", port, args.messages, args.clients))
        rows.append(workload("moto_server", moto_port, args.moto_messages, args.clients))
    finally:
        for p in (ours, moto):
            p.terminate()
            p.wait()
        shutil.rmtree(data, ignore_errors=True)

    print(f"{'server':<18} {'messages':>8} {'deleted':>8} {'left':>5} {'calls':>6} "
          f"{'send s':>7} {'recv+del s':>10} {'msgs/s':>9}")
    for r in rows:
        print(f"{r['server']:<18} {r['messages']:>8} {r['deleted']:>8} {r['remaining']:>5} "
              f"{r['calls']:>6} {r['send_s']:>7.2f} {r['recv_delete_s']:>10.2f} "
              f"{r['msgs_per_s']:>9.0f}")
    ratio = rows[0]["msgs_per_s"] / rows[1]["msgs_per_s"]
    print(f"ratio endpoint/moto: {ratio:.1f}x")
    ours, moto_row = rows
    ok = ours["deleted"] == ours["messages"] and ours["remaining"] == 0
    if not ok:
        print("ERROR: the endpoint did not deliver and delete every message exactly once")
    if moto_row["deleted"] != moto_row["messages"]:
        print(f"note: moto_server delivered {moto_row['deleted'] - moto_row['messages']} "
              "message(s) twice to concurrent receivers (its receive is not atomic)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
