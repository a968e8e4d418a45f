#!/usr/bin/env python3
"""Benchmark: `cruncher watch`, SQS to Kubernetes Jobs, against its ceiling.

One run of this program, on one test cluster (tools/testcluster, with
kube-controller-manager paused: Job creates are what is measured, so no Job
runs and no status is written behind them) and one `cruncher local serve`
whose SQS endpoint is the queue (not moto: the queue must not be the
bottleneck):

  1. throughput: pre-fills queue `bench` with --messages (5,000) messages
     (SendMessageBatch, in parallel), then starts `cruncher watch` on it and
     measures Jobs created per second from the first Job to the last, as a
     watch on the namespace's Jobs sees them arrive; then waits for the
     queue to drain;
  2. ceiling: creates the very Jobs the controller rendered (names, labels,
     annotations, spec) in a fresh namespace with our Kubernetes client
     (build/bench/kube_create/kube_create_bench create --manifests) at the
     controller's create concurrency, measured the same way;
  3. latency: a second controller on a fresh queue; messages sent one by one
     (SendMessage) at a steady --rate (20/s) for --latency-seconds (30);
     latency = the moment the Job's ADDED event arrives on the watch minus
     the moment SendMessage was called, matched by the Job's
     `cruncher.dev/message-id` annotation; p50 and p99;
  4. the controllers' peak RSS (VmHWM from /proc/PID/status before they
     stop).

It prints one table with the targets of issue 11: watch >= 80 % of the
ceiling, p50 < 100 ms, p99 < 500 ms, RSS < 40 MB. It exits 1 when a run
fails or the Jobs are not exactly one per message; a missed target is
printed (MISS), not an error.

Usage: bench/watch/run.py [--bin build/src/cli/cruncher]
                          [--create-bench build/bench/kube_create/kube_create_bench]
                          [--messages 5000] [--rate 20] [--latency-seconds 30]
                          [--receivers N] [--quick]
This is a program, not a test: it is not part of ctest or .ci/run.
"""
import argparse
import base64
import concurrent.futures
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import boto3
import yaml
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from common.cluster import SERVER, Cluster, Kubectl, build_testcluster  # noqa: E402
from common.proc import (ClientError, log, machine_busy_seconds, mib,  # noqa: E402
                         other_cpu_share, own_cpu_seconds, process_cpu_seconds,
                         run_program, table, vmhwm_kb)

SELECTOR = "app.kubernetes.io/managed-by=cruncher"
MESSAGE_ID = "cruncher.dev/message-id"
REGION = "us-east-1"
BATCH = 10  # messages per receive, and so Jobs created at once per receiver
TARGET_RATIO = 0.80
TARGET_P50_MS = 100
TARGET_P99_MS = 500
TARGET_RSS_BYTES = 40_000_000  # 40 MB
# The seed's job.yaml, suspended (as bench/kube_create's Jobs) so that even
# with --no-pause the Job controller makes no Pods.
TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: bench-
spec:
  suspend: true
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: task
        image: busybox
        command: ["sh", "-c", "ping -c $duration $target"]
        resources:
          requests:
            cpu: 100m
            memory: 100M
"""
AWS_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
           "AWS_EC2_METADATA_DISABLED": "true"}


def body(i):
    return json.dumps({"duration": "10", "target": f"host-{i}"}, separators=(",", ":"))


def render(template, variables):
    """The template with $name / ${name} replaced in its string values, as
    the controller renders it for values without `$` (ours have none)."""
    if isinstance(template, dict):
        return {k: render(v, variables) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, variables) for v in template]
    if isinstance(template, str):
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                      lambda m: variables[m.group(1)], template)
    return template


def percentile(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


class JobWatch:
    """A watch on the Jobs of one namespace (the API's watch stream, read by
    a thread): when each Job was first seen, and its metadata. Started before
    any Job exists; `start` returns once the API server has answered, so no
    Job created afterwards is missed. It asks for metadata only
    (PartialObjectMetadata): the API server closes a watch whose reader falls
    behind, and whole Jobs at hundreds per second are more than a Python
    reader on a busy 2-core machine keeps up with. A watch the server ends
    anyway is resumed from the last resourceVersion (counted in
    `reconnects`; the events replayed then arrive late)."""

    def __init__(self, kubeconfig, ns):
        kc = yaml.safe_load(Path(kubeconfig).read_text())
        ctx = next(c["context"] for c in kc["contexts"] if c["name"] == kc["current-context"])
        cluster = next(c["cluster"] for c in kc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in kc["users"] if u["name"] == ctx["user"])
        self.url = urllib.parse.urlsplit(cluster["server"])
        self.tls = ssl.create_default_context(cadata=base64.b64decode(
            cluster["certificate-authority-data"]).decode())
        self.path = (f"/apis/batch/v1/namespaces/{ns}/jobs?watch=true&timeoutSeconds=3600&"
                     + urllib.parse.urlencode({"labelSelector": SELECTOR}))
        self.headers = {"Authorization": f"Bearer {user['token']}",
                        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"}
        self.ns = ns
        self.seen = {}       # Job name -> time.monotonic() of its ADDED event
        self.metadata = {}   # Job name -> its metadata
        self.by_message = {}  # message id -> time.monotonic() of its Job's ADDED event
        self.deleted = 0
        self.reconnects = 0
        self.last_rv = None
        self.error = None
        self.closing = False
        self.cond = threading.Condition()
        self.conn = self.sock = self.thread = None

    def _open(self):
        """Opens the stream (from the last resourceVersion seen, if any);
        returns the response."""
        conn = http.client.HTTPSConnection(self.url.hostname, self.url.port, context=self.tls,
                                           timeout=3600)
        path = self.path + (f"&resourceVersion={self.last_rv}" if self.last_rv else "")
        conn.request("GET", path, headers=self.headers)
        self.conn, self.sock = conn, conn.sock
        resp = conn.getresponse()
        if resp.status != 200:
            raise ClientError(f"watch on Jobs in {self.ns}: HTTP {resp.status} "
                              f"{resp.read()[:300]!r}")
        return resp

    def start(self):
        resp = self._open()
        self.thread = threading.Thread(target=self._read, args=(resp,), daemon=True)
        self.thread.start()
        return self

    def _read(self, resp):
        try:
            while True:
                for line in resp:
                    self._event(time.monotonic(), json.loads(line))
                if self.closing:
                    return
                self.reconnects += 1
                resp = self._open()
        except (OSError, ValueError, ClientError, http.client.HTTPException) as e:
            with self.cond:
                if not self.closing:
                    self.error = self.error or f"{type(e).__name__}: {e}"
                self.cond.notify_all()

    def _event(self, now, event):
        kind, md = event.get("type"), event.get("object", {}).get("metadata", {})
        with self.cond:
            if kind == "ERROR":
                self.error = json.dumps(event.get("object"))[:300]
            else:
                self.last_rv = md.get("resourceVersion", self.last_rv)
            if kind == "ADDED" and md.get("name") not in self.seen:
                self.seen[md["name"]] = now
                self.metadata[md["name"]] = md
                mid = md.get("annotations", {}).get(MESSAGE_ID)
                if mid:
                    self.by_message[mid] = now
            elif kind == "DELETED":
                self.deleted += 1
            self.cond.notify_all()

    def wait_for(self, count, timeout, alive=lambda: None):
        """Waits until COUNT Jobs were seen; `alive` raises if what makes
        them has died."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.seen) < count:
                if self.error:
                    raise ClientError(f"watch on {self.ns}: {self.error}")
                alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ClientError(f"{self.ns}: {len(self.seen)} of {count} Jobs after "
                                      f"{timeout:.0f} s")
                self.cond.wait(min(left, 0.5))

    def span(self):
        """Seconds from the first Job seen to the last."""
        times = sorted(self.seen.values())
        return times[-1] - times[0] if len(times) > 1 else 0.0

    def close(self):
        # The reader thread is blocked in a read holding the response's
        # buffer lock: end the stream under it first, then close.
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.thread is not None:
            self.thread.join(10)
        self.conn.close()


class Process:
    """A cruncher process with its log in a file."""

    def __init__(self, argv, log_path, env):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def tail(self):
        return "\n".join(self.log_path.read_text().splitlines()[-5:])

    def alive(self):
        if self.proc.poll() is not None:
            raise ClientError(f"{' '.join(self.argv[:2])} exited with {self.proc.returncode}:"
                              f"\n{self.tail()}")

    def log_event(self, event, timeout):
        """The first JSON log line whose "event" is EVENT."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            for line in self.log_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("event") == event:
                    return entry
            time.sleep(0.05)
        raise ClientError(f"{self.argv[1]}: no {event!r} log line after {timeout} s:\n"
                          f"{self.tail()}")

    def vmhwm_kb(self):
        return vmhwm_kb(self.proc.pid)

    def cpu_seconds(self):
        return process_cpu_seconds(self.proc.pid)

    def stop(self):
        """SIGTERM; returns its exit status (SIGKILL after 60 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def sqs_client(endpoint):
    return boto3.client("sqs", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(max_pool_connections=16, retries={"max_attempts": 1}))


def prefill(sqs, url, count, threads=8):
    """Sends COUNT messages, bodies body(0..COUNT-1), with SendMessageBatch
    from THREADS threads."""
    def send(first):
        entries = [{"Id": str(i), "MessageBody": body(i)}
                   for i in range(first, min(first + BATCH, count))]
        r = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if r.get("Failed"):
            raise ClientError(f"SendMessageBatch: {r['Failed'][:2]}")
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(send, first) for first in range(0, count, BATCH)]:
            f.result()


def queue_left(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def detect_receivers(binary):
    """Whether `cruncher watch` has `--receivers` (newer builds), and its
    default if --help shows one: (True, N or None), else (False, None)."""
    out = subprocess.run([binary, "watch", "--help"], capture_output=True, text=True).stdout
    m = re.search(r"--receivers\s+INT(?:[^=\n]*=(\d+))?", out)
    if not m:
        return False, None
    return True, int(m.group(1)) if m.group(1) else None


class Bench:
    def __init__(self, args, tmp, cluster, kubectl, endpoint):
        self.args = args
        self.tmp = tmp
        self.cluster = cluster
        self.kc = kubectl
        self.endpoint = endpoint
        self.sqs = sqs_client(endpoint)
        self.template = tmp / "job.yaml"
        self.template.write_text(TEMPLATE)
        self.env = {**os.environ, **AWS_ENV}
        self.rss = {}  # phase -> controller VmHWM in kB

    def new_queue(self, name):
        return self.sqs.create_queue(QueueName=name,
                                     Attributes={"VisibilityTimeout": "30"})["QueueUrl"]

    def new_namespace(self, ns):
        self.kc.create_namespace(ns)
        return ns

    def controller(self, name, url, ns):
        """Starts `cruncher watch` on URL, creating Jobs in NS; returns once
        it logs that it is watching."""
        argv = [self.args.bin, "watch", "--queue-url", url, "--endpoint-url", self.endpoint,
                "--region", REGION, "--backend", "kubernetes",
                "--kubeconfig", self.cluster.kubeconfig, "-n", ns,
                "--template", str(self.template), "--data-dir", str(self.tmp / "watch-data"),
                # No client-side limit (the ceiling has none either).
                "--kube-qps", "10000", "--kube-burst", "20000"]
        if self.args.receivers_flag:
            argv += ["--receivers", str(self.args.receivers)]
        argv += self.args.watch_arg
        proc = Process(argv, self.tmp / f"{name}.log", self.env)
        proc.log_event("watching", 60)
        return proc

    def throughput(self):
        n = self.args.messages
        url = self.new_queue("bench")
        t0 = time.monotonic()
        prefill(self.sqs, url, n)
        log(f"  pre-filled {n} messages in {time.monotonic() - t0:.1f} s "
            f"({n / (time.monotonic() - t0):.0f}/s, SendMessageBatch from 8 threads)")
        ns = self.new_namespace("bench-watch")
        watch = JobWatch(self.cluster.kubeconfig, ns).start()
        srv0, cpu_mark = self.cluster.cpu_seconds(SERVER), time.monotonic()
        t_start = time.monotonic()
        proc = self.controller("throughput", url, ns)
        try:
            watch.wait_for(n, max(120, n / 10), proc.alive)
            t_last = max(watch.seen.values())
            srv_cores = (self.cluster.cpu_seconds(SERVER) - srv0) / (time.monotonic() - cpu_mark)
            deadline = time.monotonic() + 60
            while (left := queue_left(self.sqs, url)) and time.monotonic() < deadline:
                time.sleep(0.1)
            drained = time.monotonic() - t_start
            if left:
                raise ClientError(f"queue bench: {left} messages left 60 s after the last Job")
            self.rss["throughput"] = proc.vmhwm_kb()
            cpu = proc.cpu_seconds()
        finally:
            code = proc.stop()
            watch.close()
        if code != 0:
            raise ClientError(f"watch exited {code} after SIGTERM:\n{proc.tail()}")
        tasks = [md.get("annotations", {}).get("task") for md in watch.metadata.values()]
        if len(watch.seen) != n or sorted(tasks) != sorted(body(i) for i in range(n)):
            raise ClientError(f"{ns}: {len(watch.seen)} Jobs for {n} messages, or their tasks "
                              "differ from what was sent")
        span = watch.span()
        return {"ns": ns, "jobs": watch.metadata, "rate": (n - 1) / span if span else 0.0,
                "reconnects": watch.reconnects,
                "span": span, "from_start": t_last - t_start, "drained": drained,
                "cpu": cpu, "srv_cores": srv_cores}

    def ceiling(self, watched):
        """Creates the Jobs the controller made, again, in a fresh namespace
        with our client at the controller's concurrency."""
        tmpl = yaml.safe_load(TEMPLATE)
        del tmpl["metadata"]["generateName"]
        path = self.tmp / "manifests.jsonl"
        with open(path, "w") as f:
            for name, md in watched["jobs"].items():
                m = render(tmpl, json.loads(md["annotations"]["task"]))
                m["metadata"] = {"name": name, "labels": md["labels"],
                                 "annotations": md["annotations"]}
                f.write(json.dumps(m, separators=(",", ":")) + "\n")
        ns = self.new_namespace("bench-ceiling")
        watch = JobWatch(self.cluster.kubeconfig, ns).start()
        srv0, cpu_mark = self.cluster.cpu_seconds(SERVER), time.monotonic()
        try:
            res, maxrss = run_program(
                [self.args.create_bench, "create", "--kubeconfig", self.cluster.kubeconfig,
                 "--namespace", ns, "--manifests", str(path),
                 "--concurrency", str(self.args.concurrency)],
                timeout=max(120, self.args.messages / 10))
            watch.wait_for(self.args.messages, 60)
            srv_cores = (self.cluster.cpu_seconds(SERVER) - srv0) / (time.monotonic() - cpu_mark)
        finally:
            watch.close()
        if res.get("created") != self.args.messages:
            raise ClientError(f"kube_create_bench reported created={res.get('created')}")
        self.check_same(watched, watch, ns)
        span = watch.span()
        return {"rate": (self.args.messages - 1) / span if span else 0.0, "span": span,
                "own_rate": res["created"] / float(res["seconds"]), "rss_kb": maxrss,
                "reconnects": watch.reconnects,
                "srv_cores": srv_cores}

    def check_same(self, watched, ceiling, ns):
        """The ceiling's Jobs are the controller's: same names, labels and
        annotations, and (for one, read back) the same spec."""
        if set(ceiling.metadata) != set(watched["jobs"]):
            raise ClientError(f"{ns}: the ceiling's Job names differ from the controller's")
        for name, md in ceiling.metadata.items():
            w = watched["jobs"][name]
            if md.get("labels") != w.get("labels") or md.get("annotations") != w.get("annotations"):
                raise ClientError(f"{ns}/{name}: labels or annotations differ from "
                                  f"{watched['ns']}/{name}")
        name = next(iter(ceiling.metadata))
        specs = []
        for where in (watched["ns"], ns):
            spec = json.loads(self.kc.run("-n", where, "get", "job", name, "-o", "json").stdout)
            spec = spec["spec"]
            # Generated per object by the API server.
            spec.pop("selector", None)
            spec["template"].pop("metadata", None)
            specs.append(spec)
        if specs[0] != specs[1]:
            raise ClientError(f"Job {name}: the ceiling's spec differs from the controller's")

    def latency(self):
        ns = self.new_namespace("bench-latency")
        url = self.new_queue("latency")
        watch = JobWatch(self.cluster.kubeconfig, ns).start()
        proc = self.controller("latency", url, ns)
        count = int(self.args.rate * self.args.latency_seconds)
        sent = {}  # message id -> time.monotonic() just before SendMessage
        try:
            # One warm-up message: the first create opens the controller's
            # connections; a steady stream is what is measured.
            warm = self.sqs.send_message(QueueUrl=url, MessageBody=body(-1))["MessageId"]
            watch.wait_for(1, 60, proc.alive)
            t0 = time.monotonic() + 0.5
            for i in range(count):
                due = t0 + i / self.args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                t = time.monotonic()
                sent[self.sqs.send_message(QueueUrl=url, MessageBody=body(i))["MessageId"]] = t
            late = time.monotonic() - (t0 + (count - 1) / self.args.rate)
            watch.wait_for(count + 1, 60, proc.alive)
            self.rss["latency"] = proc.vmhwm_kb()
        finally:
            code = proc.stop()
            watch.close()
        if code != 0:
            raise ClientError(f"watch exited {code} after SIGTERM:\n{proc.tail()}")
        if set(watch.by_message) != set(sent) | {warm}:
            raise ClientError(f"{ns}: the Jobs' message ids differ from the messages sent")
        lat = [(watch.by_message[m] - t) * 1000 for m, t in sent.items()]
        return {"count": count, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
                "reconnects": watch.reconnects,
                "max": max(lat), "sender_late_ms": late * 1000}


def verdict(ok):
    return "PASS" if ok else "MISS"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "build" / "src" / "cli" / "cruncher"),
                    help="the cruncher binary (default: build/src/cli/cruncher)")
    ap.add_argument("--create-bench",
                    default=str(ROOT / "build" / "bench" / "kube_create" / "kube_create_bench"),
                    help="our client's create program (bench/kube_create/ours)")
    ap.add_argument("--messages", type=int, default=5000,
                    help="messages pre-filled for the throughput run")
    ap.add_argument("--rate", type=float, default=20, help="messages/s in the latency run")
    ap.add_argument("--latency-seconds", type=float, default=30,
                    help="how long the latency run sends")
    ap.add_argument("--receivers", type=int,
                    help="`watch --receivers` (only if watch has the flag; default: its own)")
    ap.add_argument("--concurrency", type=int,
                    help="the ceiling's concurrency (default: the controller's, "
                         "receivers x 10 Jobs per batch)")
    ap.add_argument("--watch-arg", action="append", default=[],
                    help="an extra argument for `cruncher watch` (repeatable)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 500 messages, 5 s of latency")
    ap.add_argument("--cluster-gogc", type=int, default=400,
                    help="GOGC of the cluster's Go processes (0: their default)")
    ap.add_argument("--no-pause", action="store_true",
                    help="keep kube-controller-manager running")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.latency_seconds = min(args.messages, 500), min(args.latency_seconds, 5)
    for what, path in (("--bin", args.bin), ("--create-bench", args.create_bench)):
        if not os.access(path, os.X_OK):
            sys.exit(f"{what} {path}: not an executable file (build it: ninja -C build "
                     f"{Path(path).name})")
    args.bin = str(Path(args.bin).resolve())
    args.create_bench = str(Path(args.create_bench).resolve())
    args.receivers_flag, default_receivers = detect_receivers(args.bin)
    if not args.receivers_flag:
        if args.receivers not in (None, 1):
            sys.exit("--receivers: this cruncher's watch has no --receivers flag")
        args.receivers = 1
    elif args.receivers is None:
        # Passed explicitly either way, so the concurrency printed is the
        # one used.
        args.receivers = default_receivers or 1
    args.concurrency = args.concurrency or args.receivers * BATCH
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t_all = time.monotonic()
    busy0, own0 = machine_busy_seconds(), own_cpu_seconds()
    kubectl_bin = build_testcluster()
    tmp = Path(tempfile.mkdtemp(prefix="watch-bench-"))
    cluster = Cluster(tmp / "cluster", args.cluster_gogc)
    serve = bench = None
    failed = False
    results = {}
    serve_cpu = 0.0
    try:
        secs = cluster.start()
        kc = Kubectl(kubectl_bin, cluster.kubeconfig, str(tmp / "kubectl-cache"))
        log(f"test cluster {kc.server_version()} ready in {secs:.1f} s ({tmp / 'cluster'}); "
            f"cluster GOGC={args.cluster_gogc or 'default'}")
        if not args.no_pause:
            cluster.pause_job_controller()
            log("kube-controller-manager paused (SIGSTOP): Jobs are created, never run")
        # The queue: local serve's SQS endpoint. Its own dispatcher serves
        # queue `idle`, which nobody sends to; the benchmark's queues are
        # made through the SQS API, so only `cruncher watch` receives them.
        (tmp / "idle.yaml").write_text(TEMPLATE)
        serve = Process([args.bin, "local", "serve", "--data-dir", str(tmp / "serve-data"),
                         "--queue", "idle", "--template", str(tmp / "idle.yaml"),
                         "--slots", "1", "--sqs-port", "0", "--region", REGION],
                        tmp / "serve.log", {**os.environ, **AWS_ENV})
        endpoint = serve.log_event("serving", 60)["sqs"]["endpoint_url"]
        log(f"SQS endpoint: cruncher local serve at {endpoint}")
        receivers = (f"--receivers {args.receivers}" if args.receivers_flag
                     else "1 receiver (this watch has no --receivers flag)")
        log(f"controller: cruncher watch, {receivers}, batches of {BATCH}: up to "
            f"{args.concurrency} creates at "
            f"once; --kube-qps 10000 --kube-burst 20000"
            + (f"; extra: {' '.join(args.watch_arg)}" if args.watch_arg else ""))
        bench = Bench(args, tmp, cluster, kc, endpoint)

        steps = [("throughput", lambda: bench.throughput()),
                 ("ceiling", lambda: bench.ceiling(results["throughput"])),
                 ("latency", lambda: bench.latency())]
        for name, step in steps:
            if name == "ceiling" and "throughput" not in results:
                continue
            log(f"\n== {name} ==")
            try:
                results[name] = r = step()
            except (ClientError, OSError, KeyError, ValueError) as e:
                failed = True
                log(f"  FAILED: {e}")
                continue
            if r["reconnects"]:
                log(f"  note: the API server ended the Job watch {r['reconnects']} time(s); "
                    "resumed, but the events replayed then arrived late")
            if name == "throughput":
                log(f"  {args.messages} Jobs: first to last {r['span']:.2f} s = "
                    f"{r['rate']:.0f} Jobs/s; last Job {r['from_start']:.2f} s after the "
                    f"controller started; queue drained at {r['drained']:.2f} s; controller "
                    f"CPU {r['cpu']:.1f} s; apiserver+etcd {r['srv_cores']:.2f} cores")
            elif name == "ceiling":
                log(f"  {args.messages} Jobs at concurrency {args.concurrency}: first to last "
                    f"{r['span']:.2f} s = {r['rate']:.0f} Jobs/s (the program's own timing: "
                    f"{r['own_rate']:.0f}/s; its peak RSS {mib(r['rss_kb']):.1f} MiB); "
                    f"apiserver+etcd {r['srv_cores']:.2f} cores")
            else:
                log(f"  {r['count']} messages at {args.rate:g}/s: p50 {r['p50']:.1f} ms, "
                    f"p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms (the sender ended "
                    f"{r['sender_late_ms']:.0f} ms behind its schedule)")
        serve_cpu = serve.cpu_seconds()
    except ClientError as e:
        failed = True
        log(f"FAILED: {e}")
    finally:
        if serve is not None:
            serve.stop()
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    wall = time.monotonic() - t_all
    other = other_cpu_share(machine_busy_seconds() - busy0,
                            own_cpu_seconds() - own0 + cluster.final_cpu, wall)
    t, c, lat = results.get("throughput"), results.get("ceiling"), results.get("latency")
    rss = [v for v in (bench.rss.values() if bench else []) if v]
    rows = []
    rows.append(["watch Jobs/s (pre-filled queue)", f"{t['rate']:.0f}" if t else "FAILED",
                 "", ""])
    rows.append([f"ceiling Jobs/s (our client, c={args.concurrency})",
                 f"{c['rate']:.0f}" if c else "FAILED", "", ""])
    if t and c:
        ratio = t["rate"] / c["rate"]
        rows.append(["watch / ceiling", f"{ratio * 100:.0f} %", f">= {TARGET_RATIO * 100:.0f} %",
                     verdict(ratio >= TARGET_RATIO)])
    else:
        rows.append(["watch / ceiling", "-", f">= {TARGET_RATIO * 100:.0f} %", "-"])
    if lat:
        rows.append([f"latency p50 at {args.rate:g} msg/s", f"{lat['p50']:.0f} ms",
                     f"< {TARGET_P50_MS} ms", verdict(lat["p50"] < TARGET_P50_MS)])
        rows.append([f"latency p99 at {args.rate:g} msg/s", f"{lat['p99']:.0f} ms",
                     f"< {TARGET_P99_MS} ms", verdict(lat["p99"] < TARGET_P99_MS)])
    else:
        rows.append(["latency p50 / p99", "FAILED", "", "-"])
    if rss:
        peak = max(rss)
        rows.append(["controller peak RSS (VmHWM)", f"{peak * 1024 / 1e6:.1f} MB",
                     f"< {TARGET_RSS_BYTES / 1e6:.0f} MB",
                     verdict(peak * 1024 < TARGET_RSS_BYTES)])
    receivers = f"--receivers {args.receivers}" if args.receivers_flag else "one receiver"
    log(f"\n== cruncher watch ({receivers}): {args.messages} pre-filled messages, "
        f"{int(args.rate * args.latency_seconds)} at {args.rate:g}/s ==")
    log(table(["", "figure", "target", "verdict"], rows))
    log(f"\n{os.cpu_count()} cores; total {wall:.0f} s; local serve (the SQS endpoint) used "
        f"{serve_cpu:.1f} CPU s; other processes used {other * 100:.0f} % of the machine's "
        "CPU meanwhile")
    if other > 0.1:
        log("note: other work was running on this machine: figures are noisy; compare "
            "rows within one run only")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
