#!/usr/bin/env python3
"""End-to-end throughput of the local mode, side by side with xargs.

5,000 trivial tasks (`true`) go through `cruncher send` → the durable queue →
the dispatcher → the Job store → the process executor, with every state
change committed to SQLite (synchronous=FULL, WAL). In the same run,
`xargs -P SLOTS -n1 true` runs the same number of processes with no queue and
no bookkeeping at all: the ceiling for spawning processes on this machine.
Also prints the peak RSS (VmHWM) of `cruncher local serve`.

Usage: bench/local_throughput/run.py [--bin build/src/cli/cruncher] [--tasks 5000]
"""
import argparse
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: bench-
spec:
  template:
    spec:
      containers:
      - name: c
        image: busybox
        command: ["true"]
"""


def finished_jobs(db):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*), SUM(object LIKE '%\"Complete\"%') "
                               "FROM jobs WHERE finished=1").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return (0, 0)


def peak_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def run_cruncher(binary, tasks, slots, work):
    data = work / "data"
    template = work / "job.yaml"
    template.write_text(TEMPLATE)
    lines = work / "tasks.jsonl"
    lines.write_text("".join(f'{{"n": {i}}}\n' for i in range(tasks)))
    log = open(work / "serve.log", "w")
    serve = subprocess.Popen([binary, "local", "serve", "--data-dir", str(data),
                              "--template", str(template), "--slots", str(slots)],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        db = data / "cruncher.db"
        deadline = time.monotonic() + 30
        while not (data / "executor.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        subprocess.run([binary, "send", "--data-dir", str(data), "--file", str(lines)],
                       check=True, stdout=subprocess.DEVNULL)
        t_sent = time.monotonic()
        while True:
            done, complete = finished_jobs(db)
            if done >= tasks:
                break
            if serve.poll() is not None:
                raise SystemExit(f"local serve exited early; see {work}/serve.log")
            time.sleep(0.02)
        t1 = time.monotonic()
        rss = peak_rss_kib(serve.pid)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    return {"seconds": t1 - t0, "send_seconds": t_sent - t0, "complete": complete,
            "rss_kib": rss}


def run_xargs(tasks, slots):
    t0 = time.monotonic()
    subprocess.run(f"seq {tasks} | xargs -P {slots} -n1 true", shell=True, check=True)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "build" / "src" / "cli" / "cruncher"))
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--slots", type=int, default=(os.cpu_count() or 1) * 4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cruncher-bench-"))
    try:
        xargs_s = run_xargs(args.tasks, args.slots)
        r = run_cruncher(args.bin, args.tasks, args.slots, work)
        xargs_again_s = run_xargs(args.tasks, args.slots)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    xargs_rate = args.tasks / min(xargs_s, xargs_again_s)
    rate = args.tasks / r["seconds"]
    print(f"local throughput: {args.tasks} tasks of `true`, {args.slots} slots, "
          f"{os.cpu_count()} cores")
    print(f"{'':34}{'seconds':>10}{'tasks/s':>10}")
    print(f"{'xargs -P%d -n1 true (best of 2)' % args.slots:34}"
          f"{min(xargs_s, xargs_again_s):10.2f}{xargs_rate:10.0f}")
    print(f"{'cruncher send + local serve':34}{r['seconds']:10.2f}{rate:10.0f}")
    print(f"  of which `cruncher send --file`: {r['send_seconds']:.2f} s; "
          f"jobs Complete: {r['complete']}/{args.tasks}")
    print(f"cruncher / xargs: {100 * rate / xargs_rate:.0f} % (target >= 40 %)")
    print(f"peak RSS of local serve: {r['rss_kib'] / 1024:.1f} MiB (target < 30 MiB)")
    if r["complete"] != args.tasks:
        raise SystemExit("not every task completed")


if __name__ == "__main__":
    main()
