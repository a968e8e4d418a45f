"""The controller against a Job backend that fails or never answers.

Attack finding 1: while the Kubernetes API could not be used (down, refusing
our token, no such namespace), `watch` released each message after 1 s and
received it again, and every receive counted toward maxReceiveCount: valid
messages went to the DLQ. Now the batch is held, invisible, and nothing more
is received until the API answers.

Attack finding 2: SIGTERM took minutes while a server did not answer. Now
creates in progress get two thirds of --grace-period, the held messages go
back to the queue at once, and the process exits within the grace period;
at start-up, with nothing in flight, a signal ends it at once.

No cluster is needed: the API server here is a closed port or a socket that
accepts connections and never answers.
"""
import json
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, run, wait_for

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: x
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: default}}}}]
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: abc}}}}]
"""

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata: {generateName: out-}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["echo", "$n"]}]
"""


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


@pytest.fixture
def silent_port():
    """A server that accepts connections and never says a word."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    yield s.getsockname()[1]
    s.close()


def start_watch(tmp_path, data_dir, port, *extra):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(port=port))
    template = tmp_path / "job.yaml"
    template.write_text(TEMPLATE)
    log = open(tmp_path / "watch.log", "w+")
    proc = subprocess.Popen(
        [BIN, "watch", "--local", "--backend", "kubernetes", "--data-dir", str(data_dir),
         "--kubeconfig", str(kubeconfig), "--template", str(template), *extra],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def log_text(log):
    log.flush()
    log.seek(0)
    return log.read()


def events(log):
    out = []
    for line in log_text(log).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def stop(proc, timeout):
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code, time.monotonic() - started


def local_status(data_dir):
    return json.loads(run("status", "--backend", "local", "-o", "json",
                          data_dir=data_dir, check=0).stdout)


def queue_counts(data_dir):
    """(visible, in flight) in `tasks`, and the messages in `tasks-dlq`."""
    status = local_status(data_dir)
    q = status["queue"]
    return (q["visible"], q["inFlight"]), status["deadLetterQueue"]["visible"]


def test_api_server_down_uses_up_no_deliveries(tmp_path, data_dir, closed_port):
    for i in range(5):
        run("send", json.dumps({"n": str(i)}), data_dir=data_dir, check=0)
    # Two deliveries before the DLQ: the old loop dead-lettered every message
    # within seconds.
    proc, log = start_watch(tmp_path, data_dir, closed_port, "--max-receive-count", "2")
    wait_for(lambda: any(e.get("event") == "backend_unavailable" for e in events(log)),
             timeout=60, what="backend_unavailable in the log")
    time.sleep(8)  # several held retries (1 s, 2 s, 4 s)
    code, took = stop(proc, 30)
    text = log_text(log)
    assert code == 0, text
    assert took < 10, f"SIGTERM took {took:.1f}s\n{text}"
    retries = [e for e in events(log) if e.get("event") == "backend_unavailable"]
    assert len(retries) >= 2, text
    assert all(e.get("held_messages") == 5 for e in retries), text
    assert not any(e.get("event") == "poison_message" for e in events(log)), text
    handed = [e for e in events(log) if e.get("event") == "messages_handed_back"]
    assert handed and handed[0]["visible_now"] == 5, text
    assert queue_counts(data_dir) == ((5, 0), 0)


def test_sigterm_ends_a_create_the_api_server_never_answers(tmp_path, data_dir, silent_port):
    run("send", json.dumps({"n": "1"}), data_dir=data_dir, check=0)
    proc, log = start_watch(tmp_path, data_dir, silent_port, "--grace-period", "6s")
    # The create is in flight once the message is invisible.
    # After the template's dry run has timed out (10 s): start-up goes on.
    wait_for(lambda: queue_counts(data_dir) == ((0, 1), 0),
             timeout=60, what="the message received")
    time.sleep(1)
    code, took = stop(proc, 10)
    text = log_text(log)
    assert took < 6.5, f"SIGTERM took {took:.1f}s with a 6s grace period\n{text}"
    assert code == 0, text
    assert any(e.get("event") == "cancelling_creates" for e in events(log)), text
    # Handed back: visible again at once, not after its visibility timeout.
    assert queue_counts(data_dir) == ((1, 0), 0), text


def test_signal_during_start_up_exits_at_once(tmp_path, silent_port):
    # The SQS endpoint never answers: the queue's attributes never come.
    template = tmp_path / "job.yaml"
    template.write_text(TEMPLATE)
    env_url = f"http://127.0.0.1:{silent_port}/000000000000/q"
    log = open(tmp_path / "watch.log", "w+")
    proc = subprocess.Popen(
        [BIN, "watch", "--queue-url", env_url, "--endpoint-url", f"http://127.0.0.1:{silent_port}",
         "--backend", "local", "--data-dir", str(tmp_path / "d"), "--template", str(template)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
             "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
             "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    time.sleep(2)
    assert proc.poll() is None, log_text(log)
    code, took = stop(proc, 5)
    text = log_text(log)
    assert took < 2, f"SIGTERM during start-up took {took:.1f}s\n{text}"
    assert code == 0, text
    assert any(e.get("event") == "stopping" and e.get("during") == "start-up"
               for e in events(log)), text
