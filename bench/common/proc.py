"""Child programs, CPU and memory figures of processes, and printing."""
import json
import os
import resource
import signal
import subprocess
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


class ClientError(Exception):
    """A benchmarked program failed or printed something unexpected."""


def log(msg):
    print(msg, flush=True)


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def client_env():
    # Client programs run with their runtime's defaults: no GC tuning
    # inherited from the caller (the cluster gets its own, see Cluster).
    env = dict(os.environ)
    for k in ("GOGC", "GOMEMLIMIT", "GODEBUG"):
        env.pop(k, None)
    return env


def run_program(argv, timeout):
    """Runs a program that prints one JSON line last; returns (that object,
    its peak RSS in kB as the kernel saw it at exit via wait4)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=client_env())
    except OSError as e:
        raise ClientError(f"cannot run {argv[0]}: {e}") from e
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    out, err = [], []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()))
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for t in readers:
        t.start()
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        for t in readers:
            t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out[0].decode(errors="replace")
    stderr = err[0].decode(errors="replace")
    if proc.returncode != 0:
        why = "timed out" if proc.returncode == -signal.SIGKILL else f"exit {proc.returncode}"
        raise ClientError(f"{' '.join(map(str, argv[:2]))}: {why}: "
                          f"{last_line(stderr) or last_line(stdout)}")
    try:
        return json.loads(last_line(stdout)), rusage.ru_maxrss
    except json.JSONDecodeError as e:
        raise ClientError(f"{argv[0]}: last stdout line is not JSON: "
                          f"{last_line(stdout)!r}") from e


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def process_cpu_seconds(pid):
    """utime + stime of one process, or 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu_seconds():
    """CPU seconds of this process and of its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def vmhwm_kb(pid):
    """Peak RSS (VmHWM) of a running process in kB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def other_cpu_share(busy_seconds, ours_seconds, wall_seconds):
    """Share of the machine's CPU (0..1) that neither the harness, its
    children nor the cluster used during WALL_SECONDS: other people's work
    on a shared machine."""
    return max(0.0, busy_seconds - ours_seconds) / wall_seconds / (os.cpu_count() or 1)


def mib(kb):
    return kb / 1024.0


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def table(header, rows):
    """A text table, the first column left-aligned and the others right."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(r):
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)
