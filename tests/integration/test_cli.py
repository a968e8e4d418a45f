"""The operator's CLI against the local backend, end to end."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, TASK_TEMPLATE, jobs, queue_status, run, state, wait_for

AWS_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")

COMMANDS = [["demo"], ["local", "serve"], ["watch"], ["send"], ["status"], ["jobs"],
            ["logs"], ["requeue"], ["gc"], ["dlq", "list"], ["dlq", "redrive"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help(cmd):
    p = run(*cmd, "--help", check=0)
    assert "Usage" in p.stdout or "Usage" in p.stderr


def test_unknown_flag_is_bad_usage(data_dir):
    p = run("jobs", "--no-such-flag", data_dir=data_dir)
    assert p.returncode == 2
    assert "--no-such-flag" in p.stderr


def test_no_subcommand_is_bad_usage():
    assert run().returncode == 2


def test_send_rejects_bad_bodies_and_keeps_what_is_queued(data_dir):
    run("send", '{"n": 1}', data_dir=data_dir, check=0)
    for body, why in [("not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"),
                      ('"text"', "must be a JSON object")]:
        p = run("send", body, data_dir=data_dir)
        assert p.returncode == 1, body[:40]
        assert why in p.stderr
    # Larger than one argument may be: through stdin.
    p = run("send", "--file", "-", data_dir=data_dir,
            input='{"x": "' + "a" * (1024 * 1024) + '"}\n')
    assert p.returncode == 1 and "1 MiB" in p.stderr
    # Mixed valid and invalid: all-or-nothing.
    p = run("send", '{"ok": true}', "nope", data_dir=data_dir)
    assert p.returncode == 1 and "argument 2" in p.stderr
    assert queue_status(data_dir)["queue"]["visible"] == 1


def test_send_file_validates_every_line_first(data_dir, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(250)))
    p = run("send", "--file", str(good), data_dir=data_dir, check=0)
    assert "sent 250 tasks" in p.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n": 1}\n\n{broken\n[3]\n')
    p = run("send", "--file", str(bad), data_dir=data_dir)
    assert p.returncode == 1
    assert "line 3" in p.stderr and "line 4" in p.stderr and "nothing sent" in p.stderr
    assert queue_status(data_dir)["queue"]["visible"] == 250
    p = run("send", "--file", "-", data_dir=data_dir, input='{"n": 7}\n', check=0)
    assert queue_status(data_dir)["queue"]["visible"] == 251


def test_missing_and_invalid_templates(data_dir, tmp_path):
    p = run("local", "serve", "--template", str(tmp_path / "nope.yaml"), data_dir=data_dir)
    assert p.returncode == 1 and "cannot read template" in p.stderr
    for text, why in [("kind: Job\nspec: [", "not valid YAML"),
                      ("kind: Pod\nspec: {}\n", "kind must be Job"),
                      ("- a\n- b\n", "must be a mapping"),
                      ("kind: Job\nspec:\n  template:\n    spec: {}\n", "containers"),
                      # Attack findings 8 and 9: these used to abort (1e999)
                      # or make every message's Job fail (the others).
                      (TASK_TEMPLATE.replace("backoffLimit: 1", "backoffLimit: 1e999"),
                       "the number 1e999 at /spec/backoffLimit is out of the range"),
                      (TASK_TEMPLATE.replace("generateName: t-", "labels: {$n: x}"),
                       "found $n in a key at /metadata/labels"),
                      (TASK_TEMPLATE + "---\n" + TASK_TEMPLATE, "holds 2 YAML documents")]:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        p = run("local", "serve", "--template", str(path), data_dir=data_dir)
        assert p.returncode == 1, text
        assert why in p.stderr, p.stderr


def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = run("send", '{"n": 1}', data_dir=blocker / "sub")
    assert p.returncode == 1
    assert "cannot create data directory" in p.stderr


def test_tasks_run_fail_and_requeue(serve, data_dir):
    server = serve()
    run("send", '{"n": 1, "sleep": "0", "code": "0"}',
        '{"n": 2, "sleep": "0", "code": "3"}', data_dir=data_dir, check=0)
    done = wait_for(lambda: (lambda js: js if len(js) == 2 and all(
        state(j) in ("Complete", "Failed") for j in js) else None)(jobs(data_dir)),
        what="two finished jobs")
    by_task = {json.loads(j["metadata"]["annotations"]["task"])["n"]: j for j in done}
    assert state(by_task[1]) == "Complete"
    failed = by_task[2]
    assert state(failed) == "Failed"
    assert failed["status"]["failed"] == 2  # backoffLimit 1 → two attempts
    reason = [c for c in failed["status"]["conditions"] if c["type"] == "Failed"][0]["reason"]
    assert reason == "BackoffLimitExceeded"
    assert failed["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cruncher"
    # The task annotation is the body, verbatim.
    assert failed["metadata"]["annotations"]["task"] == '{"n": 2, "sleep": "0", "code": "3"}'

    name = failed["metadata"]["name"]
    logs = run("logs", name, data_dir=data_dir, check=0).stdout
    assert logs.count("task 2") == 2 and "exit code 3" in logs
    table = run("jobs", "--state", "failed", "-o", "wide", data_dir=data_dir, check=0).stdout
    assert name in table and "BackoffLimitExceeded" in table
    assert "FailureTarget,Failed" in table  # its conditions
    assert by_task[1]["metadata"]["name"] not in table

    # Requeue refuses a Job that does not exist, and requeues the failed one.
    assert run("requeue", "no-such-job", data_dir=data_dir).returncode == 1
    p = run("requeue", "--all-failed", data_dir=data_dir, check=0)
    assert f"job {name} requeued" in p.stdout
    again = wait_for(lambda: [j for j in jobs(data_dir) if j["metadata"]["name"] != name
                              and json.loads(j["metadata"]["annotations"]["task"])["n"] == 2
                              and state(j) == "Failed"], what="the requeued job")
    assert all(j["metadata"]["name"] != name for j in jobs(data_dir))

    p = run("gc", data_dir=data_dir, check=0)
    assert "1 finished Job deleted" in p.stdout
    assert [state(j) for j in jobs(data_dir)] == ["Failed"]
    run("gc", "--include-failed", data_dir=data_dir, check=0)
    assert jobs(data_dir) == []
    assert run("gc", "--older-than", "soon", data_dir=data_dir).returncode == 2
    # Attack finding 3: these wrapped negative (gc deleted every finished
    # Job) or aborted in stoll.
    for age in ["9223372036854776s", "9223372036854775807s", "99999999999999999999s"]:
        p = run("gc", "--older-than", age, "--include-failed", data_dir=data_dir)
        assert p.returncode == 2 and "invalid duration" in p.stderr, p.stderr
    assert server.proc.poll() is None


def test_poison_message_goes_to_dlq_with_reason(serve, data_dir):
    server = serve()
    run("send", '{"n": 1}', data_dir=data_dir, check=0)  # no "sleep", no "code"
    dlq = wait_for(lambda: json.loads(run("dlq", "list", "-o", "json", data_dir=data_dir,
                                          check=0).stdout), what="a dead-lettered message")
    assert dlq[0]["body"] == '{"n": 1}'
    assert 'no variable "sleep"' in dlq[0]["attributes"]["cruncher-error"]
    assert queue_status(data_dir)["queue"]["visible"] == 0
    assert jobs(data_dir) == []
    assert server.proc.poll() is None  # the loop keeps going
    assert "poison_message" in server.logs()
    p = run("dlq", "redrive", data_dir=data_dir, check=0)
    assert "moved 1 message" in p.stdout
    # Redriven, it is poison again: it comes back to the DLQ, never lost.
    wait_for(lambda: json.loads(run("dlq", "list", "-o", "json", data_dir=data_dir,
                                    check=0).stdout), what="the message back in the DLQ")


def test_second_executor_on_same_data_dir_is_refused(serve, data_dir, template):
    serve()
    wait_for(lambda: (data_dir / "executor.lock").exists() and
             (data_dir / "executor.lock").read_text().strip(), what="the lock")
    p = run("local", "serve", "--template", str(template), data_dir=data_dir, timeout=20)
    assert p.returncode == 1 and "another cruncher executor" in p.stderr


def test_on_success_failed_job_reaches_dlq_through_redrive(serve, data_dir):
    serve("--ack", "on-success", "--max-receive-count", "2")
    run("send", '{"n": 9, "sleep": "0", "code": "1"}', data_dir=data_dir, check=0)
    dlq = wait_for(lambda: json.loads(run("dlq", "list", "-o", "json", data_dir=data_dir,
                                          check=0).stdout), timeout=90,
                   what="redrive of the failed task to the DLQ")
    assert dlq[0]["body"] == '{"n": 9, "sleep": "0", "code": "1"}'
    assert "cruncher-error" not in dlq[0]["attributes"]  # moved by redrive, not poison
    assert dlq[0]["receiveCount"] == 2
    # One Job for the message, however often it was delivered.
    assert len(jobs(data_dir)) == 1


def test_on_success_deletes_message_when_job_completes(serve, data_dir):
    serve("--ack", "on-success")
    run("send", '{"n": 5, "sleep": "3", "code": "0"}', data_dir=data_dir, check=0)
    wait_for(lambda: [j for j in jobs(data_dir) if state(j) == "Running"], what="running")
    # In flight while the Job runs...
    assert queue_status(data_dir)["queue"]["inFlight"] == 1
    wait_for(lambda: [j for j in jobs(data_dir) if state(j) == "Complete"], what="complete")
    # ...and deleted once it completed.
    wait_for(lambda: queue_status(data_dir)["queue"]["inFlight"] == 0, what="ack")
    assert queue_status(data_dir)["queue"]["visible"] == 0


def test_max_active_backpressure(serve, data_dir):
    serve("--max-active", "2")
    run("send", *[json.dumps({"n": i, "sleep": "0.5", "code": "0"}) for i in range(6)],
        data_dir=data_dir, check=0)
    peak = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        js = jobs(data_dir)
        unfinished = sum(1 for j in js if state(j) not in ("Complete", "Failed"))
        peak = max(peak, unfinished)
        if len(js) == 6 and unfinished == 0:
            break
        time.sleep(0.05)
    assert len(jobs(data_dir)) == 6
    assert all(state(j) == "Complete" for j in jobs(data_dir))
    assert 1 <= peak <= 2


def test_sigterm_stops_serve_cleanly(serve, data_dir):
    server = serve()
    wait_for(lambda: "serving" in server.logs(), what="serving")
    assert server.stop(signal.SIGTERM) == 0
    assert '"event":"stopped"' in server.logs()


# --- Papercuts (issue 8, defect 18) ---------------------------------------

@pytest.mark.parametrize("cmd, unknown", [(["frobnicate"], "frobnicate"),
                                          (["dlq", "purge"], "purge"),
                                          (["local", "sevre"], "sevre")])
def test_unknown_subcommand_is_named(cmd, unknown):
    p = run(*cmd)
    assert p.returncode == 2
    assert f'unknown command "{unknown}"' in p.stderr, p.stderr


def test_template_directory_is_named_as_such(data_dir, tmp_path):
    p = run("local", "serve", "--template", str(tmp_path), data_dir=data_dir)
    assert p.returncode == 1
    assert f"{tmp_path} is a directory" in p.stderr, p.stderr


@pytest.mark.parametrize("body, kind", [("[1,2]", "array"), ("[]", "array"),
                                        ('["a","b"]', "array")])
def test_json_array_argument_is_one_refused_body(data_dir, body, kind):
    p = run("send", body, data_dir=data_dir)
    assert p.returncode == 1
    assert "1 invalid task," in p.stderr, p.stderr
    assert f"argument 1: message body must be a JSON object, got {kind}" in p.stderr
    assert "argument 2" not in p.stderr


def test_sqs_host_accepts_a_host_name(serve, data_dir):
    server = serve("--sqs-host", "localhost")
    serving = wait_for(lambda: next((json.loads(line) for line in server.logs().splitlines()
                                     if '"event":"serving"' in line), None), timeout=30,
                       what=f"serving; logs:\n{server.logs()}")
    endpoint = serving["sqs"]["endpoint_url"]
    assert endpoint.startswith("http://127.0.0.1:"), endpoint
    url = serving["sqs"]["queue_url"]
    p = subprocess.run([BIN, "send", '{"n": 1}', "--queue-url", url, "--endpoint-url",
                        endpoint, "--data-dir", str(data_dir)],
                       capture_output=True, text=True, env=AWS_ENV, timeout=60)
    assert p.returncode == 0, p.stderr


def test_unresolvable_sqs_host_is_a_clear_error(data_dir, template):
    p = run("local", "serve", "--template", str(template), "--sqs-host",
            "no-such-host.invalid", "--sqs-port", "0", data_dir=data_dir, timeout=30)
    assert p.returncode == 1
    assert "no-such-host.invalid" in p.stderr, p.stderr


READ_ONLY_COMMANDS = [["status"], ["jobs"], ["logs", "some-job"], ["dlq", "list"],
                      ["requeue", "--all-failed"], ["gc"], ["dlq", "redrive"]]


@pytest.mark.parametrize("cmd", READ_ONLY_COMMANDS, ids=" ".join)
def test_commands_do_not_create_a_missing_data_dir(tmp_path, cmd):
    missing = tmp_path / "missing" / "data"
    p = run(*cmd, data_dir=missing)
    assert p.returncode == 1
    assert f"no such data directory: {missing}" in p.stderr, p.stderr
    assert not (tmp_path / "missing").exists()


# --- send: partial failures on SQS (issue 8, defect 7) --------------------


def reported_lines(stderr):
    """The line numbers `send` reports as not sent ("  lines 3, 11-20: why")."""
    numbers = []
    for line in stderr.splitlines():
        m = re.match(r"^  lines? ([0-9, -]+): ", line)
        if not m:
            continue
        for part in m.group(1).split(", "):
            first, _, last = part.partition("-")
            numbers += range(int(first), int(last or first) + 1)
    return numbers


def drain(sqs, url):
    """Every message body of the queue (each received once, kept invisible)."""
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                  VisibilityTimeout=600).get("Messages", [])
        if not got:
            return bodies
        bodies += [m["Body"] for m in got]


@pytest.mark.parametrize("big_lines, expect_not_sent", [
    # One line too large for the queue: SQS refuses its whole batch of ten
    # (moto validates a batch before sending any of it); every other line
    # before and after it is queued.
    ([137], range(131, 141)),
    # A whole chunk of 100 refused: send stops there; the rest is reported
    # as not tried, and what went before stays queued.
    (range(101, 201), range(101, 251)),
])
def test_send_reports_exactly_the_lines_not_sent(moto, tmp_path, big_lines, expect_not_sent):
    import boto3
    sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    url = sqs.create_queue(QueueName="small",
                           Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    lines = {}
    text = ""
    for n in range(1, 251):
        body = {"n": n}
        if n in big_lines:
            body["pad"] = "x" * 2000  # under cruncher's 1 MiB, over the queue's 1 KiB
        lines[n] = json.dumps(body)
        text += lines[n] + "\n"
    path = tmp_path / "tasks.jsonl"
    path.write_text(text)
    p = subprocess.run([BIN, "send", "--file", str(path), "--queue-url", url,
                        "--endpoint-url", moto, "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, env=AWS_ENV, timeout=120)
    assert p.returncode == 1, p.stderr
    not_sent = reported_lines(p.stderr)
    assert sorted(not_sent) == list(expect_not_sent), p.stderr
    assert f"{len(not_sent)} of 250 tasks not sent" in p.stderr
    assert f"sent {250 - len(not_sent)} tasks" in p.stdout
    arrived = drain(sqs, url)
    expected = [lines[n] for n in range(1, 251) if n not in not_sent]
    assert sorted(arrived) == sorted(expected)  # each sent line exactly once


# --- logs: streamed, --tail, --follow (issue 8, defect 8) ------------------

SCRIPT_TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: s-
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "$script"]
"""


@pytest.fixture
def script_serve(serve, tmp_path):
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT_TEMPLATE)
    return lambda *extra: serve(*extra, template_path=path)


def finished_job(data_dir):
    return wait_for(lambda: next((j for j in jobs(data_dir)
                                  if state(j) in ("Complete", "Failed")), None),
                    timeout=120, what="a finished job")


def run_measuring_rss(tmp_path, *args):
    """Runs cruncher with stdout to a file; returns (status, stdout path, max RSS in KiB)."""
    out = tmp_path / f"out-{time.monotonic_ns()}"
    with open(out, "wb") as stdout, open(str(out) + ".err", "wb") as stderr:
        p = subprocess.Popen([BIN, *args], stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(p.pid, 0)
    return os.waitstatus_to_exitcode(status), out, usage.ru_maxrss


def test_logs_streams_a_big_log_in_small_memory(script_serve, data_dir, tmp_path):
    script_serve()
    # 20 MB of output: 200,000 lines of 99 characters.
    run("send", json.dumps({"script": "head -c 19800000 /dev/zero | tr '\\0' x | "
                                      "fold -w 99; echo last line"}),
        data_dir=data_dir, check=0)
    name = finished_job(data_dir)["metadata"]["name"]
    code, small, small_rss = run_measuring_rss(tmp_path, "logs", name, "--tail", "1",
                                               "--data-dir", str(data_dir))
    assert code == 0 and small.read_text().endswith("last line\n")
    code, big, big_rss = run_measuring_rss(tmp_path, "logs", name, "--data-dir", str(data_dir))
    assert code == 0
    assert big.stat().st_size > 20_000_000
    with open(big, "rb") as f:
        f.seek(-10, os.SEEK_END)
        assert f.read() == b"last line\n"
    # Reading the whole log costs no more memory than reading one line of it.
    assert big_rss < small_rss + 8 * 1024, (small_rss, big_rss)


def test_logs_tail_prints_the_last_lines_of_each_attempt(script_serve, data_dir):
    script_serve()
    run("send", json.dumps({"script": "seq 1 1000; exit 1"}), data_dir=data_dir, check=0)
    job = finished_job(data_dir)
    assert state(job) == "Failed"
    name = job["metadata"]["name"]
    out = run("logs", name, "--tail", "3", data_dir=data_dir, check=0).stdout
    assert out == ("==> attempt-1 (exit code 1) <==\n998\n999\n1000\n"
                   "==> attempt-2 (exit code 1) <==\n998\n999\n1000\n"), out
    assert run("logs", name, "--tail", "0", data_dir=data_dir, check=0).stdout.count("\n") == 2
    assert run("logs", name, data_dir=data_dir, check=0).stdout.count("\n") == 2002
    assert run("logs", name, "--tail", "-2", data_dir=data_dir).returncode == 2


def test_logs_follow_prints_as_written_until_the_job_finishes(script_serve, data_dir):
    script_serve()
    run("send", json.dumps({"script": "echo start; sleep 2; echo end; exit 1"}),
        data_dir=data_dir, check=0)
    name = wait_for(lambda: next((j["metadata"]["name"] for j in jobs(data_dir)), None),
                    what="the job")
    follower = subprocess.Popen([BIN, "logs", "-f", name, "--data-dir", str(data_dir)],
                                stdout=subprocess.PIPE, text=True)
    try:
        # The first attempt's output arrives while it still runs...
        assert follower.stdout.readline().startswith("==> attempt-1")
        assert follower.stdout.readline() == "start\n"
        assert state(next(j for j in jobs(data_dir) if j["metadata"]["name"] == name)) \
            not in ("Complete", "Failed")
        # ...and the follower ends by itself once the Job has failed.
        rest = follower.communicate(timeout=60)[0]
    finally:
        follower.kill()
        follower.wait()
    assert follower.returncode == 0
    assert state(next(j for j in jobs(data_dir) if j["metadata"]["name"] == name)) == "Failed"
    assert rest == "end\n==> attempt-2 (running) <==\nstart\nend\n" or \
        rest.startswith("end\n==> attempt-2 (") and rest.endswith("<==\nstart\nend\n"), rest


def test_logs_follow_of_a_finished_job_returns_at_once(script_serve, data_dir):
    script_serve()
    run("send", json.dumps({"script": "echo done"}), data_dir=data_dir, check=0)
    name = finished_job(data_dir)["metadata"]["name"]
    p = run("logs", "-f", name, data_dir=data_dir, check=0, timeout=10)
    assert p.stdout == "==> attempt-1 (exit code 0) <==\ndone\n"


def test_send_file_that_is_a_directory_fails(tmp_path, data_dir):
    # Found by attacking the binary: it said "sent 0 tasks" and exited 0.
    p = run("send", "--file", str(tmp_path), data_dir=data_dir)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "cannot read" in p.stderr


@pytest.mark.parametrize("qps", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_kube_qps_must_be_a_finite_number(data_dir, qps):
    p = run("jobs", "--backend", "kubernetes", "--kube-qps", qps, data_dir=data_dir)
    assert p.returncode == 2, p.stderr
    assert "--kube-qps" in p.stderr


@pytest.mark.parametrize("name", ["../../other/jobs/victim", "", "BAD NAME", "a_b"])
def test_invalid_job_names_are_bad_usage_on_both_backends(data_dir, tmp_path, name):
    # The kubeconfig points at nothing: a name must be refused before any request.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n")
    for backend in (["--backend", "local"],
                    ["--backend", "kubernetes", "--kubeconfig", str(kubeconfig)]):
        for cmd in (["requeue", name], ["logs", name]):
            p = run(*cmd, *backend, data_dir=data_dir)
            assert p.returncode == 2, (cmd, backend, p.stderr)
            assert "invalid Job name" in p.stderr, p.stderr


# Attack finding 4: with two queues in one data directory, jobs, status, gc
# and requeue --all-failed --queue qb acted on queue qa's Jobs too.
def test_commands_act_only_on_their_queues_jobs(serve, data_dir):
    serve("--queue", "qa")
    run("send", "--queue", "qa", '{"n": 1, "sleep": "0", "code": "0"}',
        '{"n": 2, "sleep": "0", "code": "3"}', data_dir=data_dir, check=0)
    run("send", "--queue", "qb", '{"n": 3, "sleep": "0", "code": "0"}', data_dir=data_dir, check=0)

    def of_queue(queue):
        return json.loads(run("jobs", "--queue", queue, "-o", "json",
                              data_dir=data_dir, check=0).stdout)["items"]

    wait_for(lambda: sorted(state(j) for j in of_queue("qa")) == ["Complete", "Failed"],
             what="queue qa's two finished Jobs")
    assert of_queue("qb") == []
    status = json.loads(run("status", "--queue", "qb", "-o", "json", data_dir=data_dir, check=0).stdout)
    assert status["jobs"] == {"Pending": 0, "Running": 0, "Complete": 0, "Failed": 0}
    assert status["queue"]["visible"] == 1
    p = run("requeue", "--all-failed", "--queue", "qb", data_dir=data_dir, check=0)
    assert "no failed Jobs to requeue" in p.stdout
    p = run("gc", "--include-failed", "--queue", "qb", data_dir=data_dir, check=0)
    assert "0 finished Jobs deleted" in p.stdout
    assert len(of_queue("qa")) == 2
    status = json.loads(run("status", "--queue", "qa", "-o", "json", data_dir=data_dir, check=0).stdout)
    assert status["jobs"]["Complete"] == 1 and status["jobs"]["Failed"] == 1


# Attack finding 13: --leader-elect and --lease-name were ignored with the
# local backend, and two "leader-elected" watchers both dispatched.
@pytest.mark.parametrize("args", [
    ["watch", "--local", "--leader-elect"],
    ["watch", "--local", "--lease-name", "x"],
    ["watch", "--local", "--leader-elect", "--lease-name", "x"],
    ["local", "serve", "--lease-name", "x"],
])
def test_leader_election_needs_the_kubernetes_backend(data_dir, template, args):
    p = run(*args, "--template", str(template), data_dir=data_dir, timeout=20)
    assert p.returncode == 2, p.stderr
