"""Message values reach the task exactly as the message wrote them (issue 8,
defects 13 and 14), through `cruncher local serve` end to end."""
import json

from conftest import jobs, run, state, wait_for

# The template reads a secret from its env, as the seed's operators would; the
# shell's own `$` is written `$$` (a literal `$` in a Cruncher template).
SECRET_TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: v-
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", 'printf "arg=%s env=%s" "$$1" "$$V"', "sh", "$v"]
        env:
        - name: API_TOKEN
          value: s3cret-token
        - name: V
          value: $v
"""


def test_values_with_dollar_signs_arrive_verbatim(serve, data_dir, tmp_path):
    template = tmp_path / "secret.yaml"
    template.write_text(SECRET_TEMPLATE)
    server = serve(template_path=template)
    values = ["a$$b", "$(API_TOKEN)", "$$(V) $ $(", "${v} $v"]
    run("send", *[json.dumps({"v": v}) for v in values], data_dir=data_dir, check=0)
    done = wait_for(lambda: (lambda js: js if len(js) == len(values) and all(
        state(j) in ("Complete", "Failed") for j in js) else None)(jobs(data_dir)),
        what="the finished jobs")
    for job in done:
        value = json.loads(job["metadata"]["annotations"]["task"])["v"]
        assert state(job) == "Complete", job
        out = run("logs", job["metadata"]["name"], data_dir=data_dir, check=0).stdout
        assert f"arg={value} env={value}" in out, out
        assert "s3cret-token" not in out, out
    assert server.proc.poll() is None


def test_value_with_nul_is_dead_lettered_with_the_reason(serve, data_dir):
    serve()  # conftest's template: echo task $n; sleep $sleep; exit $code
    body = '{"n": "a\\u0000b", "sleep": "0", "code": "0"}'
    run("send", body, data_dir=data_dir, check=0)
    dlq = wait_for(lambda: json.loads(run("dlq", "list", "-o", "json", data_dir=data_dir,
                                          check=0).stdout), what="a dead-lettered message")
    assert dlq[0]["body"] == body
    reason = dlq[0]["attributes"]["cruncher-error"]
    assert "value of 'n' contains a NUL character" in reason, reason
    assert jobs(data_dir) == []  # no truncated task ran
