#!/usr/bin/env python3
"""Benchmark: Job creates/s and informer memory against the test cluster,
side by side for ours, client-go and kubectl.

One run of this program:
  1. builds (or only checks) the client-go program in clientgo/ and the test
     cluster's binaries;
  2. starts one test cluster (tools/testcluster) in a temp dir, with
     kube-controller-manager paused (see below), and stops it at the end;
  3. for each concurrency (1, 4, 16, 64) and each client, one at a time,
     creates --jobs suspended Jobs in a fresh namespace and checks that they
     are all there and shaped as the template says;
  4. creates --cache-jobs (10,000) Jobs in one namespace with the client-go
     program at concurrency 32 and runs `cache` (a paged list + watch
     informer until it holds them all) for client-go and ours, comparing
     their peak RSS (VmHWM).

The client programs follow the contract in README.md; `--ours PATH` adds
ours. Without it the ours column says so instead of showing a number.
kubectl runs the seed's way: one `kubectl create -f -` per Job, the manifest
on stdin, C of them in parallel.

Usage: bench/kube_create/run.py [--ours PATH] [--jobs 400] [--cache-jobs 10000]
                                [--concurrency 1,4,16,64] [--rounds 1] [--quick]
This is a program, not a test: it is not part of ctest or .ci/run.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "kube_create"
sys.path.insert(0, str(ROOT / "bench"))
from common.cluster import SERVER, Cluster, Kubectl, build_testcluster  # noqa: E402
from common.proc import (ClientError, last_line, log, machine_busy_seconds,  # noqa: E402
                         median, mib, other_cpu_share, own_cpu_seconds, run_program,
                         table)

SELECTOR = "app.kubernetes.io/managed-by=cruncher"
NOT_BUILT = "ours: not built (pass --ours)"
RSS_LIMIT_KB = 64 * 1024  # the target: ours <= 64 MiB ...
RSS_RATIO = 0.5           # ... and <= half of client-go's


def job_manifest(name, i):
    """The benchmark's Job: the same object as clientgo/main.go's job() and
    the manifest in README.md."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "cruncher",
                       "cruncher.dev/queue": "bench"},
            "annotations": {"task": json.dumps({"duration": "10", "target": f"host-{i}"},
                                               separators=(",", ":"))},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 2,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "task",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo hi"],
                    "resources": {"requests": {"cpu": "100m", "memory": "100M"}},
                }],
            }},
        },
    }


class KubectlClient(Kubectl):
    """kubectl as a benchmarked client, and the checker of what clients made."""

    def create_jobs(self, ns, count, concurrency, prefix):
        """The seed's way: one `kubectl create -f -` per Job, `concurrency`
        at a time. Returns the wall-clock seconds."""
        def one(i):
            r = self.run("-n", ns, "create", "-f", "-",
                         stdin=json.dumps(job_manifest(f"{prefix}-{i}", i)), check=False)
            if r.returncode != 0:
                raise ClientError(f"kubectl create {prefix}-{i}: {last_line(r.stderr)}")
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            for f in [pool.submit(one, i) for i in range(count)]:
                f.result()
        return time.perf_counter() - t0

    def verify(self, ns, count, prefix):
        """Checks that NS holds exactly the Jobs P-0..P-(N-1), each suspended
        and carrying the template's labels and task annotation."""
        r = self.run("-n", ns, "get", "jobs", "-l", SELECTOR, "-o", "json")
        items = json.loads(r.stdout)["items"]
        names = {j["metadata"]["name"] for j in items}
        want = {f"{prefix}-{i}" for i in range(count)}
        if names != want:
            raise ClientError(f"namespace {ns}: {len(names)} Jobs, {len(want - names)} missing, "
                              f"{len(names - want)} unexpected")
        for j in items:
            i = int(j["metadata"]["name"].rsplit("-", 1)[1])
            ref = job_manifest(j["metadata"]["name"], i)
            meta, spec = j["metadata"], j["spec"]
            pod = spec["template"]["spec"]
            c = pod["containers"][0]
            ok = (spec.get("suspend") is True and spec.get("backoffLimit") == 2
                  and all(meta.get("labels", {}).get(k) == v
                          for k, v in ref["metadata"]["labels"].items())
                  and json.loads(meta.get("annotations", {}).get("task", "null"))
                  == json.loads(ref["metadata"]["annotations"]["task"])
                  and pod.get("restartPolicy") == "Never" and c.get("image") == "busybox"
                  and c.get("command") == ["sh", "-c", "echo hi"])
            if not ok:
                raise ClientError(f"namespace {ns}: Job {meta['name']} differs from the template")


def fmt_rate(v):
    if isinstance(v, str):
        return v
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def clientgo_version():
    m = re.search(r"k8s\.io/client-go (v\S+)", (HERE / "clientgo" / "go.mod").read_text())
    return m.group(1) if m else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", help="our client program (the contract in README.md)")
    ap.add_argument("--jobs", type=int, default=400, help="Jobs per (client, concurrency) run")
    ap.add_argument("--cache-jobs", type=int, default=10000, help="Jobs for the informer runs")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs per (client, concurrency); the median is shown")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 100 Jobs per run, 2,000 for the informers")
    ap.add_argument("--cluster-gogc", type=int, default=400,
                    help="GOGC of the cluster's Go processes (0: their default)")
    ap.add_argument("--no-pause", action="store_true",
                    help="keep kube-controller-manager running during the runs")
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.cache_jobs = min(args.jobs, 100), min(args.cache_jobs, 2000)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    if args.ours:
        args.ours = str(Path(args.ours).resolve())
        if not os.access(args.ours, os.X_OK):
            sys.exit(f"--ours {args.ours}: not an executable file")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t_all = time.monotonic()
    busy0, own0 = machine_busy_seconds(), own_cpu_seconds()
    t0 = time.monotonic()
    r = subprocess.run([str(HERE / "clientgo" / "build.sh")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit("building the client-go program failed (see above)")
    clientgo = last_line(r.stdout)
    log(f"client-go program: {clientgo} "
        f"({last_line(r.stderr).split('] ', 1)[-1]}; {time.monotonic() - t0:.1f} s)")
    kubectl_bin = build_testcluster()

    tmp = Path(tempfile.mkdtemp(prefix="kube-create-bench-"))
    cluster = Cluster(tmp / "cluster", args.cluster_gogc)
    failed = False
    try:
        secs = cluster.start()
        kc = KubectlClient(kubectl_bin, cluster.kubeconfig, str(tmp / "kubectl-cache"))
        sv = kc.server_version()
        log(f"test cluster {sv} ready in {secs:.1f} s ({tmp / 'cluster'}); "
            f"cluster GOGC={args.cluster_gogc or 'default'}")
        if not args.no_pause:
            cluster.pause_job_controller()
            log("kube-controller-manager paused (SIGSTOP) for the runs: no status "
                "writes behind the creates")
        # kubectl's discovery cache is warm before timing, as an operator's is.
        kc.run("api-resources", "--api-group=batch")

        clients = [("ours", args.ours), ("client-go", clientgo), ("kubectl", kubectl_bin)]
        log(f"\n== creates: {args.jobs} suspended Jobs per run, fresh namespace per run, "
            f"clients one at a time, {args.rounds} round(s) ==")
        rates = {}  # (client, concurrency) -> list of creates/s or an error string
        for c in concurrencies:
            for rnd in range(args.rounds):
                for name, prog in clients:
                    key = (name, c)
                    if prog is None:
                        rates[key] = NOT_BUILT
                        continue
                    ns = f"kc-{name.replace('-', '')}-c{c}-r{rnd}"
                    prefix = "job"
                    try:
                        kc.create_namespace(ns)
                        srv0 = cluster.cpu_seconds(SERVER)
                        if name == "kubectl":
                            s = kc.create_jobs(ns, args.jobs, c, prefix)
                        else:
                            res, _ = run_program(
                                [prog, "create", "--kubeconfig", cluster.kubeconfig,
                                 "--namespace", ns, "--count", str(args.jobs),
                                 "--concurrency", str(c), "--prefix", prefix],
                                timeout=max(120, args.jobs))
                            if res.get("created") != args.jobs:
                                raise ClientError(f"reported created={res.get('created')}")
                            s = float(res["seconds"])
                        # Cores the API server and etcd kept busy while the
                        # Jobs were created (their CPU over the client's
                        # whole life, divided by the create phase's time).
                        srv = (cluster.cpu_seconds(SERVER) - srv0) / s
                        kc.verify(ns, args.jobs, prefix)
                        rate = args.jobs / s
                        if not isinstance(rates.get(key), str):
                            rates.setdefault(key, []).append(rate)
                        log(f"  c={c:<3} {name:<9} round {rnd + 1}: {args.jobs} in {s:7.3f} s "
                            f"= {fmt_rate(rate):>6} creates/s; apiserver+etcd {srv:.2f} cores")
                    except ClientError as e:
                        failed = True
                        rates[key] = "FAILED"
                        log(f"  c={c:<3} {name:<9} round {rnd + 1}: FAILED: {e}")

        def cell(name, c):
            v = rates.get((name, c))
            return v if isinstance(v, str) else median(v)

        rows = []
        for c in concurrencies:
            o, g, k = cell("ours", c), cell("client-go", c), cell("kubectl", c)
            both = not isinstance(o, str) and not isinstance(g, str)
            ratio = f"{o / g:.2f}" if both else "-"
            met = ("yes" if o >= g else "NO") if both else "n/a"
            rows.append([c, fmt_rate(o), fmt_rate(g), fmt_rate(k), ratio, met])

        # ---- informer memory ----------------------------------------------
        n = args.cache_jobs
        ns = "kc-cache"
        log(f"\n== informer: {n} Jobs in {ns} (created by client-go at concurrency 32), "
            "then `cache --expect N` (paged LIST limit 500 + WATCH) ==")
        mem = {}
        try:
            kc.create_namespace(ns)
            res, _ = run_program([clientgo, "create", "--kubeconfig", cluster.kubeconfig,
                                  "--namespace", ns, "--count", str(n), "--concurrency", "32",
                                  "--prefix", "job"], timeout=max(300, n // 10))
            log(f"  created {n} in {res['seconds']:.1f} s = "
                f"{n / float(res['seconds']):.0f} creates/s")
        except ClientError as e:
            failed = True
            log(f"  creating the {n} Jobs FAILED: {e}")
            n = 0
        for name, prog in [("ours", args.ours), ("client-go", clientgo)]:
            if prog is None:
                mem[name] = NOT_BUILT
                continue
            if n == 0:
                mem[name] = "FAILED"
                continue
            hwm, walls = [], []
            for rnd in range(args.rounds):
                try:
                    res, maxrss = run_program(
                        [prog, "cache", "--kubeconfig", cluster.kubeconfig,
                         "--namespace", ns, "--expect", str(n)], timeout=600)
                    if res.get("cached") != n:
                        raise ClientError(f"reported cached={res.get('cached')}, want {n}")
                    v = int(res["vmhwm_kb"])
                    # The program reads its own VmHWM; the kernel's figure at
                    # exit (wait4) must not be much higher.
                    if maxrss > v * 1.10 + 2048:
                        raise ClientError(f"reported vmhwm_kb={v} but wait4 saw "
                                          f"ru_maxrss={maxrss} kB")
                    hwm.append(v)
                    walls.append(float(res["seconds"]))
                    extra = "".join(f", {k} {res[k]}" for k in ("lists", "pages") if k in res)
                    log(f"  {name:<9} round {rnd + 1}: {n} cached in {res['seconds']:.2f} s, "
                        f"VmHWM {mib(v):.1f} MiB (wait4 maxrss {mib(maxrss):.1f} MiB{extra})")
                except ClientError as e:
                    failed = True
                    log(f"  {name:<9} round {rnd + 1}: FAILED: {e}")
                    hwm = None
                    break
            mem[name] = median(hwm) if hwm else "FAILED"
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    wall = time.monotonic() - t_all
    busy = machine_busy_seconds() - busy0
    ours_cpu = own_cpu_seconds() - own0 + cluster.final_cpu
    other = other_cpu_share(busy, ours_cpu, wall)
    log(f"\n== Jobs created per second ({args.jobs} per run"
        f"{', median of %d' % args.rounds if args.rounds > 1 else ''}; "
        "target: ours >= client-go at every concurrency) ==")
    log(table(["concurrency", "ours", "client-go", "kubectl", "ours/client-go", "target met"],
              rows))
    o, g = mem.get("ours"), mem.get("client-go")
    log(f"\n== informer peak RSS (VmHWM) holding {args.cache_jobs} Jobs; "
        f"target: ours <= {RSS_LIMIT_KB // 1024} MiB and <= {RSS_RATIO:g} x client-go ==")
    mrows = []
    for name, v in (("ours", o), ("client-go", g)):
        mrows.append([name, v if isinstance(v, str) else f"{mib(v):.1f} MiB"])
    log(table(["client", "VmHWM"], mrows))
    if isinstance(o, (int, float)) and isinstance(g, (int, float)):
        met = o <= RSS_LIMIT_KB and o <= RSS_RATIO * g
        log(f"ours/client-go: {o / g:.2f}; target met: {'yes' if met else 'NO'}")
    else:
        log("ours/client-go: -")
    log(f"\nclient-go {clientgo_version()} (QPS limit off, HTTP/2, JSON); kubectl "
        f"{sv}; {os.cpu_count()} cores; total {wall:.0f} s; other processes used "
        f"{other * 100:.0f} % of the machine's CPU meanwhile")
    if other > 0.1:
        log("note: other work was running on this machine: figures are noisy; compare "
            "columns within one run only")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
