"""One test cluster (tools/testcluster) for a benchmark run, and kubectl."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common.proc import ClientError, last_line, process_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
TESTCLUSTER = ROOT / "tools" / "testcluster"
SERVER = ("kube-apiserver", "etcd")  # the processes that serve API requests


def build_testcluster():
    """Builds (or only checks) the cluster's binaries; returns kubectl's path."""
    r = subprocess.run([str(TESTCLUSTER / "build.sh")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit("building the test cluster failed (see above)")
    return str(Path(last_line(r.stdout)) / "kubectl")


class Cluster:
    """One test cluster for the whole run (tools/testcluster)."""

    def __init__(self, data_dir, gogc):
        self.data = Path(data_dir)
        self.gogc = gogc
        self.kubeconfig = None
        self.paused = []
        self.final_cpu = 0.0

    def start(self):
        env = dict(os.environ)
        if self.gogc:
            # Every Go process of the cluster (etcd, kube-apiserver, ...)
            # collects garbage less often: less CPU taken from the clients
            # and the API server on a 2-core machine.
            env["GOGC"] = str(self.gogc)
        t0 = time.monotonic()
        r = subprocess.run([str(TESTCLUSTER / "start.sh"), str(self.data)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr[-4000:])
            raise SystemExit("test cluster failed to start (see above)")
        self.kubeconfig = last_line(r.stdout)
        return time.monotonic() - t0

    def pid(self, name):
        for line in (self.data / "pids").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return int(parts[1])
        raise RuntimeError(f"no pid recorded for {name}")

    def cpu_seconds(self, names=None):
        """CPU seconds used so far by the cluster's processes (all, or NAMES)."""
        total = 0.0
        for line in (self.data / "pids").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and (names is None or parts[0] in names):
                total += process_cpu_seconds(int(parts[1]))
        return total

    def pause(self, name):
        pid = self.pid(name)
        os.kill(pid, signal.SIGSTOP)
        self.paused.append(pid)

    def pause_job_controller(self):
        """Pauses kube-controller-manager (SIGSTOP) until stop(). Its Job
        controller writes a status (condition Suspended, or Pods) for every
        Job created, doubling the writes and taking CPU from the API server
        and the client on this machine; a benchmark of creates needs none of
        it."""
        self.pause("kube-controller-manager")

    def stop(self):
        if self.kubeconfig and (self.data / "pids").exists():
            self.final_cpu = self.cpu_seconds()
        for pid in self.paused:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.paused = []
        if (self.data / "pids").exists():
            subprocess.run([str(TESTCLUSTER / "stop.sh"), str(self.data)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Kubectl:
    """The test cluster's kubectl with the cluster's kubeconfig and its own
    discovery cache."""

    def __init__(self, binary, kubeconfig, cache_dir):
        self.binary = binary
        self.base = [binary, "--kubeconfig", kubeconfig, "--cache-dir", cache_dir]

    def run(self, *args, stdin=None, check=True):
        r = subprocess.run(self.base + list(args), input=stdin, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise ClientError(f"kubectl {' '.join(args[:3])}: {last_line(r.stderr)}")
        return r

    def create_namespace(self, ns):
        self.run("create", "namespace", ns)

    def server_version(self):
        out = self.run("version", "-o", "json").stdout
        return json.loads(out).get("serverVersion", {}).get("gitVersion", "?")
