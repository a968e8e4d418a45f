"""`cruncher watch --backend kubernetes` against the real test cluster: each
message becomes a Kubernetes Job that the Job controller runs (kwok completes
its Pod); messages that cannot become a Job (a missing variable, a Job the API
server rejects) go to the dead-letter queue with the reason; `jobs`,
`status`, `requeue` and `gc` work against the cluster as against the local
executor; a message in SQS (moto) becomes a Job without --backend.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from test_testcluster import _run, _wait

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("CRUNCHER_BIN") or str(REPO / "build" / "src" / "cli" / "cruncher")

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: crunch-
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: $cname
        image: busybox
        command: ["echo", "$n"]
"""

MANAGED = "app.kubernetes.io/managed-by=cruncher"
AWS_ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def new_namespace(kube) -> str:
    ns = f"t-watch-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    # The Job controller's Pods need the namespace's default ServiceAccount.
    _wait(lambda: kube.kubectl("-n", ns, "get", "serviceaccount", "default",
                               check=False).returncode == 0, 60, what="default ServiceAccount")
    return ns


def kube_args(kube, ns):
    return ["--kubeconfig", str(kube.kubeconfig), "-n", ns]


def jobs_in(kube, ns):
    return kube.get_json("-n", ns, "jobs", "-l", MANAGED)["items"]


def complete(job) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


class Watch:
    def __init__(self, tmp_path: Path, args: list[str], env=None):
        self.log_path = tmp_path / f"watch-{uuid.uuid4().hex[:4]}.log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen([BIN, "watch", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env or os.environ,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> float:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        assert code == 0, self.output()
        return time.monotonic() - t0


def test_local_queue_to_kubernetes_jobs(kube, tmp_path):
    ns = new_namespace(kube)
    template = tmp_path / "job.yaml"
    template.write_text(TEMPLATE)
    data = str(tmp_path / "data")
    common = ["--data-dir", data, "--backend", "kubernetes", *kube_args(kube, ns)]
    bodies = [json.dumps({"cname": "work", "n": str(i)}) for i in range(3)]
    poison = [json.dumps({"n": "no-container-name"}),          # missing variable
              json.dumps({"cname": "Not_A_DNS_Label", "n": "x"})]  # API server: 422
    _run([BIN, "send", "--data-dir", data, *bodies, *poison])

    watch = Watch(tmp_path, ["--local", "-t", str(template), *common])
    try:
        def three_complete():
            jobs = jobs_in(kube, ns)
            return jobs if len(jobs) == 3 and all(complete(j) for j in jobs) else None

        jobs = _wait(three_complete, 120, what="3 Complete Jobs\n" + watch.output())
        tasks = sorted(j["metadata"]["annotations"]["task"] for j in jobs)
        assert tasks == sorted(bodies)  # the body, verbatim
        for j in jobs:
            md = j["metadata"]
            assert md["name"].startswith("crunch-")
            assert md["labels"]["cruncher.dev/queue"] == "tasks"
            assert md["annotations"]["cruncher.dev/message-id"]

        # The two poison messages are in the DLQ with their reasons.
        def dead_letters():
            out = _run([BIN, "dlq", "list", "--data-dir", data, "-o", "json"]).stdout
            items = json.loads(out)
            return items if len(items) == 2 else None

        dead = _wait(dead_letters, 60, what="2 dead letters\n" + watch.output())
        reasons = " ".join(json.dumps(d) for d in dead)
        assert "cname" in reasons, reasons
        assert "422" in reasons or "Invalid" in reasons, reasons

        # status and jobs read the cluster.
        status = json.loads(_run([BIN, "status", *common, "-o", "json"]).stdout)
        assert status["jobs"]["Complete"] == 3, status
        assert status["queue"]["visible"] == 0, status
        listed = json.loads(_run([BIN, "jobs", *common, "-o", "json"]).stdout)["items"]
        assert sorted(j["metadata"]["name"] for j in listed) == \
            sorted(j["metadata"]["name"] for j in jobs)
        # The API's own objects: the server's uid and resourceVersion.
        assert all(j["metadata"].get("uid") for j in listed)
        table = _run([BIN, "jobs", *common]).stdout
        assert "Complete" in table, table

        # requeue: the task goes back to the queue, the Job is deleted, and
        # the watch makes a new Job of it.
        victim = jobs[0]["metadata"]["name"]
        out = _run([BIN, "requeue", victim, *common]).stdout
        assert f"job {victim} requeued" in out, out

        def replaced():
            names = {j["metadata"]["name"] for j in jobs_in(kube, ns)}
            return names if victim not in names and len(names) == 3 else None

        _wait(replaced, 120, what="the requeued task's new Job\n" + watch.output())
        _wait(three_complete, 120, what="3 Complete Jobs after requeue")

        # gc deletes finished Jobs; the garbage collector removes their Pods.
        _run([BIN, "gc", "--older-than", "0", *common])
        _wait(lambda: not jobs_in(kube, ns), 60, what="no Jobs after gc")
        _wait(lambda: not kube.get_json("-n", ns, "pods")["items"], 120,
              what="the Pods cascade-deleted")

        # Each requeue and each collection left a Kubernetes Event on its Job.
        def events(reason):
            return kube.get_json("-n", ns, "events", "--field-selector",
                                 f"reason={reason}")["items"]

        requeued = events("Requeued")
        assert [e["involvedObject"]["name"] for e in requeued] == [victim], requeued
        assert requeued[0]["source"]["component"] == "cruncher"
        assert "task sent back to tasks" in requeued[0]["message"], requeued[0]
        collected = events("GarbageCollected")
        assert len(collected) == 3, collected
        assert all(e["involvedObject"]["kind"] == "Job" and e["involvedObject"]["uid"]
                   for e in collected), collected
    finally:
        took = watch.stop()
    assert took < 10, f"watch took {took:.1f}s to stop"


def test_no_permission_names_the_verb_and_resource(kube, tmp_path):
    """A ServiceAccount that may not create Jobs: `jobs` fails with the API
    server's own words (verb, resource), exit 1."""
    ns = new_namespace(kube)
    kube.kubectl("-n", ns, "create", "serviceaccount", "nobody")
    token = kube.kubectl("-n", ns, "create", "token", "nobody").stdout.strip()
    kc = tmp_path / "nobody.kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": kube.server,
                                               "certificate-authority": str(kube.ca)}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                               "namespace": ns}}]}))
    p = subprocess.run([BIN, "jobs", "--backend", "kubernetes", "--kubeconfig", str(kc),
                        "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert "forbidden" in p.stderr and "list" in p.stderr and "jobs" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_template_every_job_would_fail_with_stops_watch_at_start(kube, tmp_path):
    """Attack finding 8: a template the API server always rejects sent the
    whole queue to the dead-letter queue at full speed. A dry run of the
    template at start-up refuses it, naming the field; errors only in fields
    the messages fill (the container name here) do not."""
    ns = new_namespace(kube)
    data = str(tmp_path / "data")
    _run([BIN, "send", "--data-dir", data, json.dumps({"cname": "c", "n": "1"})])
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEMPLATE.replace("      restartPolicy: Never\n", ""))
    p = subprocess.run([BIN, "watch", "--local", "--backend", "kubernetes", "--data-dir", data,
                        "-t", str(bad), *kube_args(kube, ns)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert "restartPolicy" in p.stderr and str(bad) in p.stderr, p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "restartPolicy" in errors[0], p.stderr
    status = json.loads(_run([BIN, "status", "--data-dir", data, "--backend", "local",
                              "-o", "json"]).stdout)
    assert status["queue"]["visible"] == 1 and status["deadLetterQueue"]["visible"] == 0, status
    assert not jobs_in(kube, ns)  # the dry run stored nothing

    # A namespace that does not exist: the same, at start, not message by message.
    good = tmp_path / "good.yaml"
    good.write_text(TEMPLATE)
    p = subprocess.run([BIN, "watch", "--local", "--backend", "kubernetes", "--data-dir", data,
                        "-t", str(good), *kube_args(kube, "no-such-namespace")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert "not found" in p.stderr and "no-such-namespace" in p.stderr, p.stderr


def test_bad_kubeconfig_is_a_one_line_error(tmp_path):
    bad = tmp_path / "kc"
    bad.write_text("{{{ not: yaml")
    p = subprocess.run([BIN, "jobs", "--backend", "kubernetes", "--kubeconfig", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p
    assert str(bad) in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def _kubeconfig(path: Path, server: str, user: dict, ca: Path | None = None) -> Path:
    cluster = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def _exec_user(script: Path) -> dict:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                     "command": str(script), "interactiveMode": "Never"}}


def _script(path: Path, text: str) -> Path:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("case", ["missing-context", "plugin-exits-1", "plugin-garbage",
                                  "unreachable-server"])
def test_bad_cluster_settings_are_one_line_errors(kube, tmp_path, case):
    """Each way of pointing `cruncher` at a cluster it cannot use fails with
    exit 1 and one line that names the cause."""
    args = ["--backend", "kubernetes", "--data-dir", str(tmp_path / "data")]
    if case == "missing-context":
        args += ["--kubeconfig", str(kube.kubeconfig), "--context", "no-such-context"]
        expect = ['context "no-such-context" not found', str(kube.kubeconfig)]
    elif case == "plugin-exits-1":
        plugin = _script(tmp_path / "fails.sh", "echo 'token service down' >&2\nexit 1\n")
        kc = _kubeconfig(tmp_path / "kc", kube.server, _exec_user(plugin), kube.ca)
        args += ["--kubeconfig", str(kc)]
        expect = [str(plugin), "exited with status 1", "token service down"]
    elif case == "plugin-garbage":
        plugin = _script(tmp_path / "garbage.sh", "echo 'certainly not {json'\n")
        kc = _kubeconfig(tmp_path / "kc", kube.server, _exec_user(plugin), kube.ca)
        args += ["--kubeconfig", str(kc)]
        expect = [str(plugin), "not JSON"]
    else:
        port = free_port()  # nothing listens there
        kc = _kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{port}", {"token": "x"},
                         kube.ca)
        args += ["--kubeconfig", str(kc)]
        expect = [f"127.0.0.1:{port}", "Connection refused"]
    t0 = time.monotonic()
    p = subprocess.run([BIN, "jobs", *args], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == 1, p
    # One error line; the client's JSON log lines (a retry's warning) aside.
    lines = [l for l in p.stderr.strip().splitlines() if not l.startswith("{")]
    assert len(lines) == 1, p.stderr
    for part in expect:
        assert part in lines[0], lines[0]
    assert "error" in lines[0].lower(), lines[0]
    # A refused connection is retried with backoff (about 8 s), no longer.
    assert took < 30, f"{case} took {took:.1f}s"


def test_bad_backend_flag_is_usage_exit_2(tmp_path):
    p = subprocess.run([BIN, "jobs", "--backend", "nope", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p
    assert "--backend" in p.stderr and "nope" in p.stderr, p.stderr


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def moto():
    port = free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 30,
              interval=0.1, what="moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sqs_queue_url_defaults_to_kubernetes(kube, moto, tmp_path):
    ns = new_namespace(kube)
    template = tmp_path / "job.yaml"
    template.write_text(TEMPLATE)

    def aws(*args):
        p = subprocess.run(["aws", "sqs", "--endpoint-url", moto, *args, "--output", "json"],
                           capture_output=True, text=True, env=AWS_ENV, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else {}

    url = aws("create-queue", "--queue-name", "crunch")["QueueUrl"]
    body = json.dumps({"cname": "sqs", "n": "42"})
    aws("send-message", "--queue-url", url, "--message-body", body)
    watch = Watch(tmp_path, ["--queue-url", url, "--endpoint-url", moto,
                             "-t", str(template), *kube_args(kube, ns)], env=AWS_ENV)
    try:
        def one_complete():
            jobs = jobs_in(kube, ns)
            return jobs if len(jobs) == 1 and complete(jobs[0]) else None

        jobs = _wait(one_complete, 120, what="the SQS message's Job\n" + watch.output())
        assert jobs[0]["metadata"]["annotations"]["task"] == body
        assert jobs[0]["metadata"]["labels"]["cruncher.dev/queue"] == "crunch"
        # on-create: the message is deleted once its Job exists (beside the
        # next receive: watch overlaps acks with it).
        def drained():
            attrs = aws("get-queue-attributes", "--queue-url", url,
                        "--attribute-names", "All")["Attributes"]
            return (attrs["ApproximateNumberOfMessages"] == "0" and
                    attrs["ApproximateNumberOfMessagesNotVisible"] == "0")

        _wait(drained, 30, what="the message deleted\n" + watch.output())
    finally:
        watch.stop()


def test_two_replicas_with_leader_election(kube, tmp_path):
    """Two `watch --leader-elect` on one queue: one dispatches; kill -9 it
    and the other takes over within the lease duration; every message makes
    exactly one Job."""
    ns = new_namespace(kube)
    template = tmp_path / "job.yaml"
    template.write_text(TEMPLATE)
    data = str(tmp_path / "data")
    common = ["--local", "-t", str(template), "--data-dir", data, "--backend",
              "kubernetes", "--leader-elect", *kube_args(kube, ns)]
    _run([BIN, "send", "--data-dir", data, json.dumps({"cname": "c", "n": "0"})])
    replicas = [Watch(tmp_path, common), Watch(tmp_path, common)]
    try:
        def leader():
            leading = [w for w in replicas if '"leading"' in w.output()]
            return leading if leading else None

        first = _wait(leader, 60, what="a leader\n" + replicas[0].output())
        assert len(first) == 1, [w.output() for w in replicas]
        _wait(lambda: len(jobs_in(kube, ns)) == 1, 60, what="the first Job")
        leases = kube.get_json("-n", ns, "leases")["items"]
        # The default Lease: the queue's name and a hash of it.
        assert len(leases) == 1 and \
            leases[0]["metadata"]["name"].startswith("cruncher-tasks-"), leases
        lease_name = leases[0]["metadata"]["name"]
        assert leases[0]["spec"]["holderIdentity"], leases

        old, = first
        other = next(w for w in replicas if w is not old)
        old.proc.kill()  # kill -9: no release, the lease must expire
        old.proc.wait(timeout=30)
        old.log.close()
        killed_at = time.monotonic()
        bodies = [json.dumps({"cname": "c", "n": str(i)}) for i in range(1, 6)]
        _run([BIN, "send", "--data-dir", data, *bodies])
        _wait(lambda: '"leading"' in other.output(), 40,
              what="the other replica leading\n" + other.output())
        took = time.monotonic() - killed_at
        assert took < 15 + 2 * 2 + 5, f"took over after {took:.1f}s"
        _wait(lambda: len(jobs_in(kube, ns)) == 6, 60, what="6 Jobs\n" + other.output())
        ids = [j["metadata"]["annotations"]["cruncher.dev/message-id"]
               for j in jobs_in(kube, ns)]
        assert len(set(ids)) == 6, ids  # no message made two Jobs
        lease = kube.get_json("-n", ns, "lease", lease_name)
        assert lease["spec"]["leaseTransitions"] >= 1, lease
        replicas = [other]
    finally:
        for w in replicas:
            if w.proc.poll() is None:
                w.stop()
