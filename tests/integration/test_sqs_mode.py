"""`local serve`'s SQS endpoint with the real AWS CLI (the seed's commands,
verbatim but for --endpoint-url), and the CLI's own --queue-url mode (our
SQS client) against it."""
import json
import os
import subprocess

from conftest import BIN, jobs, run, state, wait_for

AWS_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")


def aws(*args):
    p = subprocess.run(["aws", "sqs", *args], capture_output=True, text=True,
                       env=AWS_ENV, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout) if p.stdout.strip() else {}


def cruncher_sqs(*args, endpoint, url, data_dir, check=0):
    # Jobs run as local processes: with --queue-url the default backend
    # is Kubernetes.
    p = subprocess.run([BIN, *args, "--queue-url", url, "--endpoint-url", endpoint,
                        "--data-dir", str(data_dir), "--backend", "local"],
                       capture_output=True, text=True, env=AWS_ENV, timeout=60)
    assert p.returncode == check, p.stderr
    return p


def test_seed_commands_and_queue_url_mode(serve, data_dir):
    server = serve("--sqs-port", "0")
    serving = wait_for(lambda: next((json.loads(line) for line in server.logs().splitlines()
                                     if '"event":"serving"' in line), None), what="serving")
    endpoint, url = serving["sqs"]["endpoint_url"], serving["sqs"]["queue_url"]
    assert url.endswith("/000000000000/tasks")

    # The seed's Part 2, with --endpoint-url.
    aws("send-message", "--endpoint-url", endpoint, "--queue-url", url,
        "--message-body", '{"n": 1, "sleep": "0", "code": "0"}')
    done = wait_for(lambda: [j for j in jobs(data_dir) if state(j) == "Complete"],
                    what="the job of the AWS CLI's message")
    assert done[0]["metadata"]["annotations"]["task"] == '{"n": 1, "sleep": "0", "code": "0"}'
    attrs = aws("get-queue-attributes", "--endpoint-url", endpoint, "--queue-url", url,
                "--attribute-names", "All")["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith(":tasks-dlq")

    # A body that is not JSON cannot come from `cruncher send`, but can from
    # any SQS client: it is poison, dead-lettered with the reason.
    aws("send-message", "--endpoint-url", endpoint, "--queue-url", url,
        "--message-body", "not json at all")

    # Our own SQS client against the same endpoint.
    p = cruncher_sqs("send", '{"n": 2, "sleep": "0", "code": "0"}', endpoint=endpoint, url=url, data_dir=data_dir)
    assert len(p.stdout.strip()) == 36  # the message id
    wait_for(lambda: len([j for j in jobs(data_dir) if state(j) == "Complete"]) == 2,
             what="the job of cruncher send --queue-url")
    dead = wait_for(lambda: json.loads(cruncher_sqs("dlq", "list", "-o", "json",
                                                    endpoint=endpoint, url=url, data_dir=data_dir).stdout),
                    what="the poison message in the DLQ")
    assert dead[0]["body"] == "not json at all"
    assert "not valid JSON" in dead[0]["attributes"]["cruncher-error"]
    status = json.loads(cruncher_sqs("status", "-o", "json", endpoint=endpoint, url=url, data_dir=data_dir).stdout)
    assert status["queue"]["name"] == url
    assert status["deadLetterQueue"]["name"].endswith("/000000000000/tasks-dlq")
    assert status["jobs"]["Complete"] == 2

    # Redrive through StartMessageMoveTask: back in the queue, poison again.
    p = cruncher_sqs("dlq", "redrive", endpoint=endpoint, url=url, data_dir=data_dir)
    assert "started message move task" in p.stdout
    aws("purge-queue", "--endpoint-url", endpoint, "--queue-url", url)
    assert server.proc.poll() is None


def test_unreachable_queue_url_is_a_clear_error(tmp_path):
    p = subprocess.run([BIN, "status", "--data-dir", str(tmp_path / "d"), "--queue-url",
                        "http://127.0.0.1:9/000000000000/nope", "--region", "us-east-1"],
                       capture_output=True, text=True, env=AWS_ENV, timeout=120)
    assert p.returncode == 1
    assert "http://127.0.0.1:9/000000000000/nope" in p.stderr
