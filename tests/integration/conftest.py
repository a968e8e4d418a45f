"""Shared fixtures for the end-to-end tests of the `cruncher` binary.

CRUNCHER_BIN names the binary under test (CTest sets it); every test gets its
own data directory, and `local serve` processes are stopped after each test.
"""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BIN = os.environ.get("CRUNCHER_BIN") or str(
    Path(__file__).resolve().parents[2] / "build" / "src" / "cli" / "cruncher")

TASK_TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: t-
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "echo task $n; sleep $sleep; exit $code"]
"""


def run(*args, data_dir=None, check=None, input=None, timeout=60):
    """Runs cruncher; returns the CompletedProcess. check=N asserts the status."""
    cmd = [BIN, *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    p = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
    if check is not None:
        assert p.returncode == check, f"{cmd} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}"
    return p


def wait_for(predicate, timeout=60, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def jobs(data_dir):
    return json.loads(run("jobs", "-o", "json", data_dir=data_dir, check=0).stdout)["items"]


def state(job):
    for c in job.get("status", {}).get("conditions", []):
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return c["type"]
    return "Running" if job.get("status", {}).get("ready", 0) > 0 else "Pending"


def queue_status(data_dir):
    return json.loads(run("status", "-o", "json", data_dir=data_dir, check=0).stdout)


class Server:
    """A `cruncher local serve` process on a data directory."""

    def __init__(self, data_dir, template, *extra):
        self.data_dir = data_dir
        self.log = open(Path(data_dir).parent / f"serve-{time.monotonic_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [BIN, "local", "serve", "--data-dir", str(data_dir), "--template", str(template),
             "--backoff-scale", "0.01", *extra,
             # A free port: never collide with anything on the default 9324.
             *([] if "--sqs-port" in extra else ["--sqs-port", "0"])],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(TASK_TEMPLATE)
    return path


@pytest.fixture
def serve(data_dir, template):
    servers = []

    def start(*extra, template_path=None):
        s = Server(data_dir, template_path or template, *extra)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop(signal.SIGKILL)
        s.log.close()


@pytest.fixture
def moto(tmp_path):
    """A moto server on a free loopback port; yields its endpoint URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up():
        with socket.socket() as c:
            return c.connect_ex(("127.0.0.1", port)) == 0
    try:
        wait_for(up, timeout=60, what="moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
