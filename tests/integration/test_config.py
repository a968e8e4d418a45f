"""Issue 11, configuration: flags, CRUNCHER_* variables and a --config YAML
file, in that precedence; the effective settings logged once at start with
secrets redacted; --dlq-url for poison messages (SQS is moto_server)."""
import json
import os
import signal
import subprocess
from pathlib import Path

import boto3

from conftest import BIN, TASK_TEMPLATE, jobs, wait_for

AWS_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
# The variables of the tests below are all these tests set: none may leak in
# from the environment the tests run in.
CLEAN_ENV = {k: v for k, v in AWS_ENV.items() if not k.startswith("CRUNCHER_")}


class Watch:
    """A `cruncher watch` process; its JSON log lines on stderr."""

    def __init__(self, tmp_path, args, env):
        self.log = open(tmp_path / f"watch-{len(list(tmp_path.iterdir()))}.log", "w+")
        self.proc = subprocess.Popen([BIN, "watch", *args], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def lines(self):
        self.log.flush()
        self.log.seek(0)
        return [json.loads(line) for line in self.log.read().splitlines()
                if line.startswith("{")]

    def event(self, name):
        return wait_for(lambda: next((e for e in self.lines() if e["event"] == name), None),
                        timeout=30, what=f"the {name} line")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()
        return self.proc.returncode


def write(path, text):
    Path(path).write_text(text)
    return str(path)


def test_flag_beats_env_beats_file_and_the_start_line_redacts(tmp_path):
    template = write(tmp_path / "job.yaml", TASK_TEMPLATE)
    # The template path in the file, as a ConfigMap-mounted one would be.
    config = write(tmp_path / "cruncher.yaml",
                   f"template: {template}\n"
                   "queue: from-file\n"
                   "max-active: 3\n"
                   "kube-qps: 7\n"
                   "slots: 2\n"
                   # Not used by the local queue, but logged: its userinfo
                   # must not be.
                   "endpoint-url: http://AKIDEXAMPLE:wJalrXUtnFEMIsecret@127.0.0.1:1/\n")
    env = dict(CLEAN_ENV, CRUNCHER_CONFIG=config, CRUNCHER_MAX_ACTIVE="5",
               CRUNCHER_KUBE_QPS="9", CRUNCHER_BACKOFF_SCALE="0.5")
    watch = Watch(tmp_path, ["--data-dir", str(tmp_path / "data"), "--kube-qps", "11",
                             "--backend", "local"], env)
    try:
        config_line = watch.event("config")
        serving = watch.event("serving")
    finally:
        assert watch.stop() == 0
    settings, sources = config_line["settings"], config_line["sources"]
    assert config_line["command"] == "watch"
    assert settings["kube-qps"] == 11 and sources["kube-qps"] == "flag"
    assert settings["max-active"] == 5 and sources["max-active"] == "env CRUNCHER_MAX_ACTIVE"
    assert settings["backoff-scale"] == 0.5
    assert settings["queue"] == "from-file" and sources["queue"] == f"file {config}"
    assert settings["slots"] == 2 and settings["template"] == template
    assert settings["config"] == config and sources["config"] == "env CRUNCHER_CONFIG"
    assert settings["visibility-timeout"] == 30 and "visibility-timeout" not in sources
    assert settings["endpoint-url"] == "http://<redacted>@127.0.0.1:1/"
    # What the runtime did, not only what the line says.
    assert serving["queue"] == "from-file"
    assert serving["max_active"] == 5 and serving["slots"] == 2
    assert "wJalrXUtnFEMIsecret" not in Path(watch.log.name).read_text()


def test_bad_settings_exit_2_naming_where_they_came_from(tmp_path):
    template = write(tmp_path / "job.yaml", TASK_TEMPLATE)

    def watch(config_text=None, env=None):
        args = [BIN, "watch", "--data-dir", str(tmp_path / "data"), "-t", template]
        if config_text is not None:
            args += ["--config", write(tmp_path / "c.yaml", config_text)]
        return subprocess.run(args, env=dict(CLEAN_ENV, **(env or {})),
                              capture_output=True, text=True, timeout=30)

    config = str(tmp_path / "c.yaml")
    for text, expected in [
            ("max-active: 40\nmax-actve: 4\n",
             f'config file {config} line 2: "max-actve" is not a flag of any cruncher command'),
            ("max-active: forty\n", f'config file {config} line 1: "max-active": '),
            ("queue:\n", f'config file {config}: line 1: "queue" has no value (null)'),
            ("queue: {name: q}\n", '"queue" must be a value or a list of values'),
            ("leader-elect: yes please\n", '"leader-elect": expected true or false'),
            ("#" + "x" * (1 << 20) + "\n", f"config file {config}: larger than 1048576 bytes"),
    ]:
        p = watch(text)
        assert p.returncode == 2, (text[:40], p.stderr)
        assert expected in p.stderr, (text[:40], p.stderr)
    p = watch(env={"CRUNCHER_VISIBILITY_TIMEOUT": "1"})
    assert p.returncode == 2 and "env CRUNCHER_VISIBILITY_TIMEOUT: " in p.stderr, p.stderr
    p = watch(env={"CRUNCHER_CONFIG": str(tmp_path / "absent.yaml")})
    assert p.returncode == 2, p.stderr
    assert f"config file {tmp_path / 'absent.yaml'}: no such file" in p.stderr
    # The template itself may come from any layer, and must come from one.
    p = subprocess.run([BIN, "watch", "--data-dir", str(tmp_path / "data")],
                       env=CLEAN_ENV, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "CRUNCHER_TEMPLATE" in p.stderr, p.stderr


def test_dlq_url_receives_poison_messages(tmp_path, moto):
    sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue = sqs.create_queue(QueueName="tasks")["QueueUrl"]  # no RedrivePolicy
    dlq = sqs.create_queue(QueueName="poison")["QueueUrl"]
    template = write(tmp_path / "job.yaml", TASK_TEMPLATE)
    common = ["--endpoint-url", moto, "--backend", "local",
              "--data-dir", str(tmp_path / "data"), "-t", template,
              "--backoff-scale", "0.01"]

    # Without a DLQ the start-up says what becomes of poison messages. (On
    # a queue of its own: moto answers a stopped watch's abandoned long poll
    # with a message sent later, which would hide it from the next watch.)
    other = sqs.create_queue(QueueName="other")["QueueUrl"]
    plain = Watch(tmp_path, ["--queue-url", other, *common], CLEAN_ENV)
    try:
        warning = plain.event("no_dead_letter_queue")
    finally:
        assert plain.stop() == 0
    assert warning["level"] == "warn" and "--dlq-url" in warning["fix"]

    # --dlq-url from the environment: poison goes there, with its reason.
    watch = Watch(tmp_path, ["--queue-url", queue, *common],
                  dict(CLEAN_ENV, CRUNCHER_DLQ_URL=dlq))
    try:
        assert watch.event("serving")["dead_letter_queue"] == dlq
        sqs.send_message(QueueUrl=queue, MessageBody="not json at all")
        poison = watch.event("poison_message")
    finally:
        assert watch.stop() == 0
    assert poison["action"] == f"sent to dead-letter queue {dlq}"
    listed = subprocess.run([BIN, "dlq", "list", "-o", "json", "--queue-url", queue,
                             "--dlq-url", dlq, "--endpoint-url", moto],
                            env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    [message] = json.loads(listed.stdout)
    assert message["body"] == "not json at all"
    assert message["attributes"]["cruncher-error"] == poison["reason"], message
    # Left nowhere else: the source queue is empty.
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_dlq_redrive_with_dlq_url_moves_back_to_this_queue(serve, data_dir):
    # local serve's SQS endpoint: moto has no StartMessageMoveTask.
    server = serve("--sqs-port", "0")
    serving = wait_for(lambda: next((json.loads(line) for line in server.logs().splitlines()
                                     if '"event":"serving"' in line), None), what="serving")
    endpoint, queue = serving["sqs"]["endpoint_url"], serving["sqs"]["queue_url"]
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    # The dead-letter queue of another queue: SQS's default destination (its
    # source queue) would be that one, not ours.
    parked = sqs.create_queue(QueueName="parked")["QueueUrl"]
    parked_arn = sqs.get_queue_attributes(
        QueueUrl=parked, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName="elsewhere", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": parked_arn, "maxReceiveCount": "5"})})
    body = '{"n": 7, "sleep": "0", "code": "0"}'
    sqs.send_message(QueueUrl=parked, MessageBody=body)
    args = ["--queue-url", queue, "--endpoint-url", endpoint]
    p = subprocess.run([BIN, "dlq", "redrive", *args, "--dlq-url", parked],
                       env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith(f"from {parked} back to {queue}"), p.stdout
    wait_for(lambda: any(j["metadata"]["annotations"]["task"] == body for j in jobs(data_dir)),
             what="the Job of the redriven message")
    attrs = sqs.get_queue_attributes(QueueUrl=parked, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    # SQS moves messages only out of some queue's dead-letter queue.
    loose = sqs.create_queue(QueueName="loose")["QueueUrl"]
    p = subprocess.run([BIN, "dlq", "redrive", *args, "--dlq-url", loose],
                       env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "SQS redrives only from a queue that is the dead-letter queue" in p.stderr
    # --dlq-url belongs to an SQS queue.
    p = subprocess.run([BIN, "dlq", "list", "--data-dir", str(data_dir), "--dlq-url", parked],
                       env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "give --queue-url too" in p.stderr, p.stderr
