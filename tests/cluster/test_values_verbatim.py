"""Message values reach the Pod verbatim on Kubernetes (issue 8, defect 13).

The seed's job.yaml, with a secret in its env as an operator's template would
have, is rendered by the `cruncher` binary (its local backend keeps the Job it
created as JSON: `cruncher jobs -o json`), and that Job is created on the test
cluster with kubectl. The kubelet expands `$(VAR)` and reduces `$$` in a
container's command, args and env values; kwok runs no container, so the test
reads the Pod the Job controller made and applies the kubelet's rules to the
fields the kubelet would see (a port of k8s.io/kubernetes
third_party/forked/golang/expansion, which the local executor mirrors and
tests/unit/local/job_lifecycle_test.cc checks).

Run from the repository root:  python3 -m pytest tests/cluster -v
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from test_testcluster import _run, _wait

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("CRUNCHER_BIN") or str(REPO / "build" / "src" / "cli" / "cruncher")

# The seed's job.yaml (cruncher demo's template), plus a secret in its env and
# the target in the env too.
SEED_TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: demo-
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: ping
        image: alpine
        command: ["ping", "-w", "$duration", "$target"]
        env:
        - name: API_TOKEN
          value: s3cret-token
        - name: TARGET
          value: $target
        resources:
          requests:
            cpu: 100m
            memory: 100M
"""

VALUES = ["a$$b", "$(API_TOKEN)"]


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """expansion.Expand with MappingFuncFor(env): `$$` -> `$`, `$(NAME)` -> its
    value, an unknown or unterminated reference stays as written."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                close = text.find(")", i + 2)
                if close != -1:
                    name = text[i + 2:close]
                    out.append(env.get(name, text[i:close + 1]))
                    i = close + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append(text[i:i + 2])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_kubelet_expand_port():
    env = {"A": "alpha"}
    assert kubelet_expand("$(A) $$(A) $$$(A) $(B) $(A $$ $x $", env) == \
        "alpha $(A) $alpha $(B) $(A $ $x $"


def kubelet_view(container: dict) -> tuple[list[str], dict[str, str]]:
    """What the process gets: env values expanded in order from the ones
    before them (makeEnvironmentVariables), then command + args from all."""
    env: dict[str, str] = {}
    for e in container.get("env", []):
        env[e["name"]] = kubelet_expand(e.get("value", ""), env)
    argv = [kubelet_expand(w, env) for w in container.get("command", []) + container.get("args", [])]
    return argv, env


def render_with_cruncher(tmp_path: Path) -> list[dict]:
    """The Jobs `cruncher local serve` renders for one message per value."""
    template = tmp_path / "job.yaml"
    template.write_text(SEED_TEMPLATE)
    data = tmp_path / "data"
    log = open(tmp_path / "serve.log", "w+")
    serve = subprocess.Popen(
        [BIN, "local", "serve", "--data-dir", str(data), "--template", str(template),
         "--no-sqs", "--backoff-scale", "0.01"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        bodies = [json.dumps({"target": v, "duration": "10"}) for v in VALUES]
        _run([BIN, "send", "--data-dir", str(data), *bodies])

        def rendered():
            out = _run([BIN, "jobs", "-o", "json", "--data-dir", str(data)]).stdout
            items = json.loads(out)["items"]
            return items if len(items) == len(VALUES) else None

        return _wait(rendered, 60, interval=0.2, what="the rendered Jobs")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        log.close()


def test_values_reach_the_pod_verbatim(kube, tmp_path):
    jobs = render_with_cruncher(tmp_path)
    ns = f"t-values-{uuid.uuid4().hex[:5]}"
    kube.kubectl("create", "namespace", ns)
    _wait(lambda: kube.kubectl("-n", ns, "get", "serviceaccount", "default",
                               check=False).returncode == 0, 30, what="default ServiceAccount")
    for job in jobs:
        value = json.loads(job["metadata"]["annotations"]["task"])["target"]
        # Created as cruncher rendered it, minus what the API server assigns.
        job.pop("status", None)
        for field in ("uid", "creationTimestamp", "resourceVersion"):
            job["metadata"].pop(field, None)
        name = job["metadata"]["name"]
        kube.apply(job, ns)

        def pod():
            pods = kube.get_json("-n", ns, "pods", "-l",
                                 f"batch.kubernetes.io/job-name={name}")["items"]
            return pods[0] if pods else None

        container = _wait(pod, 60, what=f"the Pod of {name}")["spec"]["containers"][0]
        # The spec holds the escaped form...
        escaped = value.replace("$", "$$")
        assert container["command"] == ["ping", "-w", "10", escaped], container
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env == {"API_TOKEN": "s3cret-token", "TARGET": escaped}, env
        # ...which the kubelet turns into exactly the message's value.
        argv, process_env = kubelet_view(container)
        assert argv == ["ping", "-w", "10", value], argv
        assert process_env["TARGET"] == value
        assert process_env["API_TOKEN"] == "s3cret-token"
        # The Job itself runs (kwok completes the Pod).
        _wait(lambda: any(c["type"] == "Complete" and c["status"] == "True"
                          for c in kube.get_json("-n", ns, "job", name)
                          .get("status", {}).get("conditions", []) or []),
              60, what=f"{name} Complete")
