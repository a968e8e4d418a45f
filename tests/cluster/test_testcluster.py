"""Acceptance tests for tools/testcluster (issue 3).

A real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) built from Go modules, with kwok simulating t3.medium-shaped
nodes and pod lifecycles, driven with the real `kubectl`.

Run from the repository root:

    python3 -m pytest tests/cluster -v

The first run builds the binaries (20-40 min on 2 cores; cached afterwards in
${CRUNCHER_CACHE_DIR:-~/.cache/cruncher}/testcluster/<versions>/bin).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TC = REPO / "tools" / "testcluster"
START_BUDGET_S = 60.0
PODS_PER_NODE = 17  # allocatable pods of the fake t3.medium nodes (start.sh)
# Figures shown at the end of the run by conftest.py's terminal summary.
MEASUREMENTS: dict[str, str] = {}


def _run(args, timeout=120, check=True, **kw):
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise AssertionError(
            f"command failed ({res.returncode}): {' '.join(map(str, args))}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        )
    return res


def _pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _port_listening(port: int) -> bool:
    out = _run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout
    return bool(out.strip())


def _port_bindable(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _wait(pred, timeout, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Cluster:
    def __init__(self, data_dir: Path, kubeconfig: Path, start_seconds: float):
        self.data_dir = data_dir
        self.kubeconfig = kubeconfig
        self.start_seconds = start_seconds
        self.pids = {}
        for line in (data_dir / "pids").read_text().splitlines():
            name, pid = line.split()
            self.pids[name] = int(pid)
        self.ports = {}
        for line in (data_dir / "ports").read_text().splitlines():
            name, port = line.split("=")
            self.ports[name] = int(port)
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.ca = data_dir / "pki" / "ca.crt"
        self.stopped = False
        self.stop_result = None

    def kubectl(self, *args, check=True, timeout=60, input=None):
        return _run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", "--request-timeout=30s", *args],
            check=check,
            timeout=timeout,
            input=input,
        )

    def get_json(self, *args):
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, manifest: dict | str, ns: str | None = None):
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        extra = ["-n", ns] if ns else []
        return self.kubectl("create", *extra, "-f", "-", input=text)

    def stop(self):
        if self.stopped:
            return self.stop_result
        self.stopped = True
        # KEEP=1: keep the data dir until after the assertions; removed below.
        self.stop_result = _run(
            [str(TC / "stop.sh"), str(self.data_dir)],
            check=False,
            timeout=120,
            env={**os.environ, "KEEP": "1"},
        )
        return self.stop_result


@pytest.fixture(scope="session")
def cluster():
    for tool in ("go", "openssl", "ss", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"required tool {tool!r} not found in PATH")

    t0 = time.monotonic()
    build = subprocess.run([str(TC / "build.sh")], capture_output=True, text=True, timeout=3 * 3600)
    build_s = time.monotonic() - t0
    if build.returncode != 0:
        pytest.fail(f"build.sh failed after {build_s:.0f}s:\n{build.stderr[-4000:]}")
    MEASUREMENTS["build.sh (build or cache check)"] = f"{build_s:.1f}s"
    # The real kubectl, built at the server's version by build.sh.
    os.environ["PATH"] = build.stdout.strip().splitlines()[-1] + os.pathsep + os.environ["PATH"]
    assert shutil.which("kubectl").startswith(build.stdout.strip().splitlines()[-1])

    data_dir = Path(tempfile.mkdtemp(prefix="cruncher-testcluster-pytest."))
    t0 = time.monotonic()
    start = subprocess.run(
        [str(TC / "start.sh"), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KEEP": "1"},
    )
    start_s = time.monotonic() - t0
    if start.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        pytest.fail(f"start.sh failed after {start_s:.1f}s:\n{start.stderr[-6000:]}")
    kubeconfig = Path(start.stdout.strip().splitlines()[-1])
    assert kubeconfig.is_file(), f"last stdout line of start.sh is not a kubeconfig: {kubeconfig}"
    MEASUREMENTS["start.sh (start to ready)"] = f"{start_s:.1f}s"

    c = Cluster(data_dir, kubeconfig, start_s)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def ns(cluster, request):
    name = f"t-{request.node.name.replace('_', '-')[:40].strip('-').lower()}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    _wait(
        lambda: cluster.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        30,
        what=f"default ServiceAccount in {name}",
    )
    return name


def job_manifest(name, *, fail=False, backoff_limit=6, ttl=None, parallelism=None,
                 completions=None, run_seconds=None, cpu="100m", memory="100M"):
    """A Job shaped like the seed's job.yaml."""
    pod_meta = {"labels": {"app": name}, "annotations": {}}
    if fail:
        pod_meta["labels"]["cruncher.dev/fail"] = "true"
    if run_seconds is not None:
        pod_meta["annotations"]["cruncher.dev/run-seconds"] = str(run_seconds)
    spec = {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": pod_meta,
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "worker",
                    "image": "busybox",
                    "command": ["ping", "-w", "5", "127.0.0.1"],
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }],
            },
        },
    }
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if completions is not None:
        spec["completions"] = completions
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": {"task": '{"target":"127.0.0.1"}'}},
        "spec": spec,
    }


def job_condition(cluster, ns, name, ctype):
    job = cluster.get_json("-n", ns, "job", name)
    for cond in job.get("status", {}).get("conditions", []) or []:
        if cond["type"] == ctype and cond["status"] == "True":
            return cond
    return None


def pods_of(cluster, ns, app):
    return cluster.get_json("-n", ns, "pods", "-l", f"app={app}")["items"]


def delete_job(cluster, ns, name):
    cluster.kubectl("-n", ns, "delete", "job", name, "--cascade=foreground", "--wait=true",
                    "--timeout=90s", timeout=120)
    _wait(lambda: not pods_of(cluster, ns, name), 60, what=f"pods of {name} gone")


# --------------------------------------------------------------------------- tests

def test_start_to_ready_under_budget(cluster):
    assert cluster.start_seconds < START_BUDGET_S, (
        f"start-to-ready took {cluster.start_seconds:.1f}s (budget {START_BUDGET_S}s)")
    # All five components are running on loopback ports recorded by start.sh.
    assert set(cluster.pids) == {"etcd", "kube-apiserver", "kube-controller-manager",
                                 "kube-scheduler", "kwok"}
    for name, pid in cluster.pids.items():
        assert _pid_alive(pid), f"{name} ({pid}) is not running"
    for name, port in cluster.ports.items():
        assert _port_listening(port), f"{name} port {port} not listening"
    listen = _run(["ss", "-Hltnp"]).stdout
    for line in listen.splitlines():
        if any(f"pid={pid}," in line for pid in cluster.pids.values()):
            local = line.split()[3]
            assert local.startswith("127.0.0.1:"), f"component listens beyond loopback: {line}"


def test_nodes_are_fake_t3_medium_in_three_zones(cluster):
    nodes = cluster.get_json("nodes", "-l", "type=kwok")["items"]
    assert len(nodes) >= 3
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c"}
    for n in nodes:
        assert n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", n["metadata"]["name"]
        assert n["status"]["capacity"]["cpu"] == "2"
        assert n["status"]["allocatable"]["cpu"] == "1930m"
        assert n["status"]["allocatable"]["pods"] == str(PODS_PER_NODE)
        assert not n["spec"].get("taints"), n["spec"].get("taints")


def test_job_completes(cluster, ns):
    cluster.apply(job_manifest("ping-ok", run_seconds=1), ns)
    cond = _wait(lambda: job_condition(cluster, ns, "ping-ok", "Complete"), 60, what="Job Complete")
    assert cond["status"] == "True"
    job = cluster.get_json("-n", ns, "job", "ping-ok")
    assert job["status"]["succeeded"] == 1
    assert job["metadata"]["annotations"]["task"] == '{"target":"127.0.0.1"}'
    pods = pods_of(cluster, ns, "ping-ok")
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"].startswith("fake-")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0
    # `kubectl wait` agrees
    cluster.kubectl("-n", ns, "wait", "--for=condition=Complete", "job/ping-ok", "--timeout=5s")


def test_failing_job_hits_backoff_limit(cluster, ns):
    # backoffLimit 0: kwok fails the first attempt and the Job controller
    # marks the Job Failed at once, without its 10 s + 20 s retry back-off
    # (what a retry looks like is the Job controller's business, not ours).
    backoff = 0
    cluster.apply(job_manifest("ping-fail", fail=True, backoff_limit=backoff, run_seconds=0), ns)
    cond = _wait(lambda: job_condition(cluster, ns, "ping-fail", "Failed"), 60, interval=0.5,
                 what="Job Failed")
    assert cond["reason"] == "BackoffLimitExceeded", cond
    job = cluster.get_json("-n", ns, "job", "ping-fail")
    assert job["status"].get("failed") == backoff + 1, job["status"]
    assert not job["status"].get("succeeded")
    assert job_condition(cluster, ns, "ping-fail", "Complete") is None
    pods = pods_of(cluster, ns, "ping-fail")
    assert len(pods) == backoff + 1
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_ttl_zero_job_disappears_after_completing(cluster, ns):
    cluster.apply(job_manifest("ping-ttl", ttl=0, run_seconds=1), ns)
    _wait(lambda: cluster.kubectl("-n", ns, "get", "job", "ping-ttl", check=False).returncode != 0,
          60, what="TTL'd Job deleted")
    res = cluster.kubectl("-n", ns, "get", "job", "ping-ttl", check=False)
    assert "NotFound" in res.stderr, res.stderr
    # It did complete before it went away: the job controller's event says so.
    events = cluster.get_json("-n", ns, "events", "--field-selector",
                              "involvedObject.kind=Job,involvedObject.name=ping-ttl")["items"]
    reasons = {e["reason"] for e in events}
    assert "Completed" in reasons, reasons
    # and the garbage collector removed its pod
    _wait(lambda: not pods_of(cluster, ns, "ping-ttl"), 60, what="pods of TTL'd Job gone")


def test_service_account_rbac_jobs_only(cluster, ns):
    cluster.kubectl("-n", ns, "create", "serviceaccount", "submitter")
    cluster.kubectl("-n", ns, "create", "role", "jobs-only", "--verb=create,get,list,watch,delete",
                    "--resource=jobs.batch")
    cluster.kubectl("-n", ns, "create", "rolebinding", "submitter-jobs", "--role=jobs-only",
                    f"--serviceaccount={ns}:submitter")
    token = cluster.kubectl("-n", ns, "create", "token", "submitter", "--duration=10m").stdout.strip()
    assert token.count(".") == 2, "expected a JWT from the TokenRequest API"

    def as_sa(*args, check=True):
        return _run(["kubectl", "--kubeconfig=/dev/null", f"--server={cluster.server}",
                     f"--certificate-authority={cluster.ca}", f"--token={token}", "-n", ns, *args],
                    check=check)

    who = as_sa("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert who == f"system:serviceaccount:{ns}:submitter"
    res = _run(["kubectl", "--kubeconfig=/dev/null", f"--server={cluster.server}",
                f"--certificate-authority={cluster.ca}", f"--token={token}", "-n", ns,
                "create", "-f", "-"], input=json.dumps(job_manifest("sa-job", run_seconds=1)))
    assert "job.batch/sa-job created" in res.stdout
    _wait(lambda: job_condition(cluster, ns, "sa-job", "Complete"), 60, what="SA's Job Complete")
    assert as_sa("get", "job", "sa-job", "-o", "name").stdout.strip() == "job.batch/sa-job"

    denied = as_sa("get", "secrets", check=False)
    assert denied.returncode != 0
    assert "(Forbidden)" in denied.stderr, denied.stderr
    denied = as_sa("create", "secret", "generic", "nope", "--from-literal=a=b", check=False)
    assert denied.returncode != 0 and 'secrets is forbidden' in denied.stderr, denied.stderr
    can_i = as_sa("auth", "can-i", "create", "jobs.batch", check=False)
    assert can_i.stdout.strip() == "yes", can_i
    can_i = as_sa("auth", "can-i", "get", "secrets", check=False)
    assert can_i.stdout.strip() == "no", can_i

    # The raw HTTP status is 403 too.
    ctx = ssl.create_default_context(cafile=str(cluster.ca))
    req = urllib.request.Request(f"{cluster.server}/api/v1/namespaces/{ns}/secrets",
                                 headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert exc.value.code == 403
    req = urllib.request.Request(f"{cluster.server}/apis/batch/v1/namespaces/{ns}/jobs",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        assert resp.status == 200
        assert [j["metadata"]["name"] for j in json.load(resp)["items"]] == ["sa-job"]


def _running_pods_on_fake_nodes(cluster):
    pods = cluster.get_json("pods", "--all-namespaces")["items"]
    return [p for p in pods if p["spec"].get("nodeName", "").startswith("fake-")
            and p["status"].get("phase") in ("Pending", "Running")]


def _unschedulable(pod):
    for c in pod["status"].get("conditions", []) or []:
        if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
            return c
    return None


def test_pods_beyond_pod_capacity_stay_pending(cluster, ns):
    nodes = cluster.get_json("nodes", "-l", "type=kwok")["items"]
    slots = sum(int(n["status"]["allocatable"]["pods"]) for n in nodes)
    slots -= len(_running_pods_on_fake_nodes(cluster))
    total = slots + 9  # 3 nodes x 17 pods = 51 slots -> 60 pods, 9 left over
    cluster.apply(job_manifest("overflow", parallelism=total, completions=total, run_seconds=600), ns)
    try:
        def settled():
            pods = pods_of(cluster, ns, "overflow")
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            pending = [p for p in pods if p["status"].get("phase") == "Pending"
                       and not p["spec"].get("nodeName") and _unschedulable(p)]
            if len(pods) == total and len(running) == slots and len(pending) == total - slots:
                return pending
            return None
        pending = _wait(settled, 120, interval=1, what=f"{slots} Running + {total - slots} Unschedulable")
        for p in pending:
            cond = _unschedulable(p)
            assert "Too many pods" in cond["message"], cond["message"]
        # and they stay Pending (no node frees up while the others run)
        time.sleep(3)
        assert settled() is not None
    finally:
        delete_job(cluster, ns, "overflow")


def test_pods_beyond_cpu_capacity_stay_pending(cluster, ns):
    nodes = cluster.get_json("nodes", "-l", "type=kwok")["items"]
    # 1500m fits once in a node's 1930m allocatable cpu: one pod per node.
    total = len(nodes) + 2
    cluster.apply(job_manifest("cpu-hog", parallelism=total, completions=total, run_seconds=600,
                               cpu="1500m"), ns)
    try:
        def settled():
            pods = pods_of(cluster, ns, "cpu-hog")
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            pending = [p for p in pods if _unschedulable(p)]
            if len(pods) == total and len(running) == len(nodes) and len(pending) == 2:
                return running, pending
            return None
        running, pending = _wait(settled, 90, interval=1, what="cpu overflow settled")
        assert len({p["spec"]["nodeName"] for p in running}) == len(nodes)
        for p in pending:
            assert "Insufficient cpu" in _unschedulable(p)["message"]
    finally:
        delete_job(cluster, ns, "cpu-hog")


def _recorded_pid(cluster, name):
    for line in (cluster.data_dir / "pids").read_text().splitlines():
        n, pid = line.split()
        if n == name:
            return pid
    return None


def test_zy_component_kill_start_restart(cluster):
    """component.sh takes the API server away and brings it back with the
    command line start.sh recorded; stop.sh (next test) stops the new one.
    Late in the file: the controllers lag for a while after an outage."""
    script = str(TC / "component.sh")
    data = str(cluster.data_dir)
    old = cluster.pids["kube-apiserver"]
    port = cluster.ports["apiserver"]
    _run([script, data, "kill", "kube-apiserver"], timeout=60)
    assert not _pid_alive(old)
    assert not _port_listening(port)
    assert _recorded_pid(cluster, "kube-apiserver") == "-"
    assert cluster.kubectl("get", "nodes", "--request-timeout=3s", check=False).returncode != 0

    t0 = time.monotonic()
    _run([script, data, "start", "kube-apiserver"], timeout=120)
    MEASUREMENTS["component.sh start kube-apiserver"] = f"{time.monotonic() - t0:.1f}s"
    new = int(_recorded_pid(cluster, "kube-apiserver"))
    assert new != old and _pid_alive(new)
    assert "fake-us-east-1a-1" in cluster.kubectl("get", "nodes").stdout
    # The order of pids is kept (stop.sh stops in reverse start order).
    names = [line.split()[0] for line in (cluster.data_dir / "pids").read_text().splitlines()]
    assert names == list(cluster.pids), names

    # restart: TERM, KILL after the timeout (the API server lingers ~10 s).
    _run([script, data, "restart", "kube-apiserver"], timeout=120,
         env={**os.environ, "TESTCLUSTER_STOP_TIMEOUT": "2"})
    newer = int(_recorded_pid(cluster, "kube-apiserver"))
    assert newer != new and _pid_alive(newer) and not _pid_alive(new)
    cluster.kubectl("get", "nodes")
    cluster.pids["kube-apiserver"] = newer  # test_zz checks it is stopped

    bad = _run([script, data, "start", "kube-apiserver"], check=False)
    assert bad.returncode != 0 and "already running" in bad.stderr, bad.stderr


def test_zz_stop_leaves_no_process_and_no_port(cluster):
    """Runs last (file order): stops the cluster and checks nothing is left."""
    pids = dict(cluster.pids)
    ports = dict(cluster.ports)
    t0 = time.monotonic()
    res = cluster.stop()
    stop_s = time.monotonic() - t0
    MEASUREMENTS["stop.sh"] = f"{stop_s:.1f}s"
    assert res.returncode == 0, res.stderr
    for name, pid in pids.items():
        assert not _pid_alive(pid), f"{name} ({pid}) still running after stop"
    for name, port in ports.items():
        assert not _port_listening(port), f"{name} port {port} still listening"
        assert _port_bindable(port), f"{name} port {port} cannot be bound"
    # nothing from this cluster's binaries is left anywhere
    leftovers = _run(["pgrep", "-a", "-f", str(cluster.data_dir)], check=False).stdout
    assert not leftovers.strip(), leftovers
