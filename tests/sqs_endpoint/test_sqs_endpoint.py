"""The local SQS endpoint driven by the AWS CLI and boto3 (SQS JSON protocol)."""
import base64
import hashlib
import http.client
import json
import os
import struct
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import ACCESS_KEY, SECRET_KEY, make_client


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def attributes_md5(attrs):
    """MD5OfMessageAttributes as the SQS documentation describes it."""
    out = b""
    for name in sorted(attrs, key=lambda n: n.encode()):
        a = attrs[name]
        out += struct.pack(">I", len(name.encode())) + name.encode()
        out += struct.pack(">I", len(a["DataType"])) + a["DataType"].encode()
        if a["DataType"].startswith("Binary"):
            v = a["BinaryValue"]
            out += b"\x02" + struct.pack(">I", len(v)) + v
        else:
            v = a["StringValue"].encode()
            out += b"\x01" + struct.pack(">I", len(v)) + v
    return hashlib.md5(out).hexdigest()


def aws_cli(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDDUMMY", AWS_SECRET_ACCESS_KEY="dummy",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    r = subprocess.run(["aws", "sqs", *args, "--endpoint-url", server.url, "--output", "json"],
                       env=env, capture_output=True, text=True, timeout=60)
    return r


def raw_post(server, body, target="AmazonSQS.ListQueues",
             content_type="application/x-amz-json-1.0", extra=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    headers.update(extra or {})
    conn.request("POST", "/", body, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data


# ---- the seed's commands, verbatim, through the AWS CLI ----

def test_seed_commands_work_with_aws_cli(server):
    r = aws_cli(server, "create-queue", "--queue-name", unique("seed"))
    assert r.returncode == 0, r.stderr
    queue_url = json.loads(r.stdout)["QueueUrl"]
    assert queue_url.startswith(f"http://127.0.0.1:{server.port}/000000000000/seed-")

    body = '{"target": "127.0.0.1", "duration": "10"}'
    r = aws_cli(server, "send-message", "--queue-url", queue_url, "--message-body", body)
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()

    r = aws_cli(server, "get-queue-attributes", "--queue-url", queue_url,
                "--attribute-names", "All")
    assert r.returncode == 0, r.stderr
    attrs = json.loads(r.stdout)["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"
    assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:" + queue_url.rsplit("/", 1)[1]
    for key in ("ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
                "CreatedTimestamp", "LastModifiedTimestamp", "VisibilityTimeout",
                "MessageRetentionPeriod", "MaximumMessageSize", "DelaySeconds",
                "ReceiveMessageWaitTimeSeconds"):
        assert key in attrs

    r = aws_cli(server, "receive-message", "--queue-url", queue_url,
                "--attribute-names", "All", "--visibility-timeout", "0")
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)["Messages"][0]
    assert msg["Body"] == body and msg["MessageId"] == sent["MessageId"]
    assert msg["Attributes"]["ApproximateReceiveCount"] == "1"

    r = aws_cli(server, "purge-queue", "--queue-url", queue_url)
    assert r.returncode == 0, r.stderr
    r = aws_cli(server, "get-queue-attributes", "--queue-url", queue_url,
                "--attribute-names", "ApproximateNumberOfMessages")
    assert json.loads(r.stdout)["Attributes"] == {"ApproximateNumberOfMessages": "0"}

    r = aws_cli(server, "get-queue-url", "--queue-name", "no-such-queue")
    assert r.returncode != 0 and "NonExistentQueue" in r.stderr


# ---- queue management ----

def test_queue_lifecycle(sqs):
    name = unique("life")
    dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "45", "MessageRetentionPeriod": "3600",
        "ReceiveMessageWaitTimeSeconds": "0", "DelaySeconds": "0",
        "MaximumMessageSize": "2048", "RedrivePolicy": policy})["QueueUrl"]
    # Same attributes again: returns the URL; different ones: QueueNameExists.
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})[
        "QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    listed = sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    assert listed == [url, dlq]

    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "45"
    assert attrs["MaximumMessageSize"] == "2048"
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn,
                                                  "maxReceiveCount": 5}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "7",
                                                       "RedrivePolicy": ""})
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout",
                                                                   "RedrivePolicy"])
    assert attrs["Attributes"] == {"VisibilityTimeout": "7"}

    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "abc"})
    assert error_code(e) == "InvalidAttributeValue"
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert error_code(e) == "InvalidAttributeValue"
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.create_queue(QueueName=unique("bad"), Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:missing",
             "maxReceiveCount": 3})})
    assert error_code(e) == "InvalidParameterValue"

    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(sqs.exceptions.InvalidAddress):
        sqs.send_message(QueueUrl=name, MessageBody="x")


def test_list_queues_pages(sqs):
    prefix = unique("page")
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5)]
    first = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    assert first["QueueUrls"] == urls[:2] and "NextToken" in first
    rest = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=10,
                           NextToken=first["NextToken"])
    assert rest["QueueUrls"] == urls[2:] and "NextToken" not in rest
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="zz-none-" + prefix)


# ---- messages ----

def test_message_attributes_and_digests(sqs):
    url = sqs.create_queue(QueueName=unique("attrs"))["QueueUrl"]
    attrs = {
        "reason": {"DataType": "String", "StringValue": "bad json ü"},
        "count": {"DataType": "Number", "StringValue": "3"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
        "trace.id": {"DataType": "String.custom", "StringValue": "abc"},
        "trace.span": {"DataType": "Number.int", "StringValue": "-1.5e3"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody="héllo", MessageAttributes=attrs)
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == attributes_md5(attrs)

    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["trace.*"],
                              MessageSystemAttributeNames=["SentTimestamp",
                                                           "ApproximateReceiveCount"],
                              VisibilityTimeout=0)["Messages"][0]
    assert set(got["MessageAttributes"]) == {"trace.id", "trace.span"}
    assert got["MD5OfMessageAttributes"] == attributes_md5(
        {k: attrs[k] for k in ("trace.id", "trace.span")})
    assert set(got["Attributes"]) == {"SentTimestamp", "ApproximateReceiveCount"}
    assert abs(int(got["Attributes"]["SentTimestamp"]) - time.time() * 1000) < 60_000

    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"],
                              AttributeNames=["All"])["Messages"][0]
    assert got["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\xff\x10"
    assert got["MessageAttributes"]["reason"]["StringValue"] == "bad json ü"
    assert got["MD5OfMessageAttributes"] == attributes_md5(attrs)
    assert got["Attributes"]["ApproximateReceiveCount"] == "2"
    assert "ApproximateFirstReceiveTimestamp" in got["Attributes"]
    assert "MessageAttributes" not in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0) \
        .get("Messages", [{}])[0] or True

    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            "n": {"DataType": "Number", "StringValue": "not-a-number"}})
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
            "AWS.reserved": {"DataType": "String", "StringValue": "v"}})
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.InvalidMessageContents):
        sqs.send_message(QueueUrl=url, MessageBody="bell \x07")


def test_delay_and_visibility(sqs):
    url = sqs.create_queue(QueueName=unique("vis"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    m = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"][0]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                  VisibilityTimeout=0)
    m2 = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])[
        "Messages"][0]
    assert m2["Attributes"]["ApproximateReceiveCount"] == "2"
    # The first delivery's handle is stale now.
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                      VisibilityTimeout=10)
    assert error_code(e) == "AWS.SimpleQueueService.MessageNotInflight"
    assert isinstance(e.value, sqs.exceptions.MessageNotInflight)
    # Deleting with it succeeds but keeps the message, as SQS documents.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m2["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")


def test_batches_with_partial_failures(sqs):
    url = sqs.create_queue(QueueName=unique("batch"))["QueueUrl"]
    r = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "one"},
        {"Id": "b", "MessageBody": "two", "DelaySeconds": 901},
        {"Id": "c", "MessageBody": "three", "MessageAttributes": {
            "k": {"DataType": "String", "StringValue": "v"}}},
    ])
    assert sorted(s["Id"] for s in r["Successful"]) == ["a", "c"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in r["Failed"]] == [
        ("b", "InvalidParameterValue", True)]
    c = next(s for s in r["Successful"] if s["Id"] == "c")
    assert c["MD5OfMessageAttributes"] == attributes_md5(
        {"k": {"DataType": "String", "StringValue": "v"}})

    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in msgs) == ["one", "three"]
    r = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "x", "ReceiptHandle": msgs[0]["ReceiptHandle"], "VisibilityTimeout": 100},
        {"Id": "y", "ReceiptHandle": "garbage", "VisibilityTimeout": 100},
    ])
    assert [s["Id"] for s in r["Successful"]] == ["x"]
    assert [(f["Id"], f["Code"]) for f in r["Failed"]] == [("y", "ReceiptHandleIsInvalid")]
    r = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "x", "ReceiptHandle": msgs[0]["ReceiptHandle"]},
        {"Id": "y", "ReceiptHandle": msgs[1]["ReceiptHandle"]},
        {"Id": "z", "ReceiptHandle": "garbage"},
    ])
    assert sorted(s["Id"] for s in r["Successful"]) == ["x", "y"]
    assert [(f["Id"], f["Code"]) for f in r["Failed"]] == [("z", "ReceiptHandleIsInvalid")]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_batch_request_errors(sqs):
    url = sqs.create_queue(QueueName=unique("batcherr"))["QueueUrl"]
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"},
                                                      {"Id": "a", "MessageBody": "2"}])
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": "x"} for i in range(11)])
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.delete_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(sqs.exceptions.InvalidBatchEntryId):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "bad id!", "MessageBody": "x"}])
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)])
    # Nothing from the rejected batches was stored.
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_client_errors(sqs):
    url = sqs.create_queue(QueueName=unique("err"))["QueueUrl"]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.receive_message(QueueUrl=url + "-missing")
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x" * (1024 * 1024 + 1))
    assert error_code(e) == "InvalidParameterValue"
    assert "Message must be shorter than 1048576 bytes" in str(e.value)
    small = sqs.create_queue(QueueName=unique("small"),
                             Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=small, MessageBody="x" * 1025)
    assert "Message must be shorter than 1024 bytes" in str(e.value)
    with pytest.raises(sqs.exceptions.UnsupportedOperation):
        sqs.add_permission(QueueUrl=url, Label="l", AWSAccountIds=["000000000000"],
                           Actions=["SendMessage"])


# ---- dead-letter queues ----

def test_redrive_to_dlq_and_move_back(sqs):
    name = unique("redrive")
    dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    src = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    for expected in ("1", "2"):
        m = sqs.receive_message(QueueUrl=src, VisibilityTimeout=0,
                                AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        assert m["Attributes"]["ApproximateReceiveCount"] == expected
    # The third delivery would exceed maxReceiveCount: it moves to the DLQ.
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    moved = sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0)["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src]

    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.start_message_move_task(SourceArn=sqs.get_queue_attributes(
            QueueUrl=src, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.start_message_move_task(SourceArn=dlq_arn + "-missing")

    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert tasks[0]["Status"] == "COMPLETED"
    assert tasks[0]["ApproximateNumberOfMessagesMoved"] == 1
    back = sqs.receive_message(QueueUrl=src, AttributeNames=["ApproximateReceiveCount"])
    assert [m["Body"] for m in back["Messages"]] == ["poison"]
    assert back["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq)


# Attack finding 11: with a's DLQ b and b's DLQ a, a message moved between
# them on every receive and was never delivered again.
def test_a_redrive_cycle_is_refused(sqs):
    name = unique("cyc")

    def arn(url):
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def redrive(url):
        return {"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn(url),
                                             "maxReceiveCount": "1"})}

    a = sqs.create_queue(QueueName=name + "-a")["QueueUrl"]
    b = sqs.create_queue(QueueName=name + "-b", Attributes=redrive(a))["QueueUrl"]
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=a, Attributes=redrive(b))
    assert error_code(e) == "InvalidParameterValue"
    assert f"({name}-a -> {name}-b -> {name}-a)" in str(e.value)
    c = sqs.create_queue(QueueName=name + "-c", Attributes=redrive(b))["QueueUrl"]
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=a, Attributes=redrive(c))
    assert error_code(e) == "InvalidParameterValue"
    assert "RedrivePolicy" not in sqs.get_queue_attributes(
        QueueUrl=a, AttributeNames=["All"])["Attributes"]

    # CreateQueue: b's DLQ a is deleted, and a new a names b.
    sqs.delete_queue(QueueUrl=a)
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.create_queue(QueueName=name + "-a", Attributes=redrive(b))
    assert error_code(e) == "InvalidParameterValue"


# ---- long polling ----

def test_long_poll_returns_when_a_message_arrives(server, sqs):
    url = sqs.create_queue(QueueName=unique("poll"))["QueueUrl"]
    sender = make_client(server.url)
    t = threading.Timer(1.0, lambda: sender.send_message(QueueUrl=url, MessageBody="wake"))
    t.start()
    start = time.monotonic()
    r = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    elapsed = time.monotonic() - start
    t.join()
    assert [m["Body"] for m in r["Messages"]] == ["wake"]
    assert 0.8 < elapsed < 3.0, elapsed


def test_queue_default_wait_applies(sqs):
    url = sqs.create_queue(QueueName=unique("defwait"),
                           Attributes={"ReceiveMessageWaitTimeSeconds": "2"})["QueueUrl"]
    start = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert 1.8 < time.monotonic() - start < 5
    start = time.monotonic()
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert time.monotonic() - start < 1


def test_long_polls_do_not_block_other_requests(server):
    client = make_client(server.url)
    idle = client.create_queue(QueueName=unique("idle"))["QueueUrl"]
    busy = client.create_queue(QueueName=unique("busy"))["QueueUrl"]

    def long_poll(_):
        c = make_client(server.url)
        start = time.monotonic()
        r = c.receive_message(QueueUrl=idle, WaitTimeSeconds=6)
        return time.monotonic() - start, r.get("Messages", [])

    with ThreadPoolExecutor(max_workers=12) as pool:
        polls = [pool.submit(long_poll, i) for i in range(12)]
        time.sleep(0.5)  # the polls are waiting now
        start = time.monotonic()
        for i in range(20):
            client.send_message(QueueUrl=busy, MessageBody=f"m{i}")
            got = client.receive_message(QueueUrl=busy)["Messages"]
            client.delete_message(QueueUrl=busy, ReceiptHandle=got[0]["ReceiptHandle"])
        busy_seconds = time.monotonic() - start
        results = [p.result() for p in polls]
    assert busy_seconds < 3.0, busy_seconds
    for elapsed, msgs in results:
        assert msgs == [] and 5.5 < elapsed < 9, elapsed


# ---- bad input over raw HTTP ----

def test_bad_requests_get_sqs_errors_and_nothing_is_lost(server, sqs):
    url = sqs.create_queue(QueueName=unique("robust"),
                           Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    bodies = [f"keep-{i}" for i in range(25)]
    for i in range(0, 25, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i:i + 10])])

    status, headers, data = raw_post(server, b"{not json")
    assert status == 400
    assert json.loads(data)["__type"].endswith("#SerializationException")
    status, headers, data = raw_post(server, b"[1, 2]", target="AmazonSQS.SendMessage")
    assert status == 400 and json.loads(data)["__type"].endswith("#SerializationException")
    status, headers, data = raw_post(server, b"{}", target="AmazonSQS.Frobnicate")
    assert status == 400
    assert json.loads(data)["__type"].endswith("#UnknownOperationException")
    assert headers["x-amzn-query-error"] == "InvalidAction;Sender"
    status, _, data = raw_post(server, b"{}", target="DynamoDB_20120810.ListTables")
    assert status == 400 and "UnknownOperation" in json.loads(data)["__type"]
    status, _, data = raw_post(server, b"{}", target=None)
    assert status == 400 and "X-Amz-Target" in json.loads(data)["message"]
    status, _, data = raw_post(server, b"Action=ListQueues",
                               content_type="application/x-www-form-urlencoded")
    assert status == 400 and "Content-Type" in json.loads(data)["message"]
    status, headers, data = raw_post(server, b"{" + b" " * (3 * 1024 * 1024) + b"}")
    assert status == 413 and json.loads(data)["message"]
    status, headers, data = raw_post(server, json.dumps(
        {"QueueUrl": url, "MessageBody": 42}).encode(), target="AmazonSQS.SendMessage")
    assert status == 400
    status, headers, data = raw_post(server, json.dumps(
        {"QueueUrl": url + "-nope", "MessageBody": "x"}).encode(),
        target="AmazonSQS.SendMessage")
    assert status == 400
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert json.loads(data) == {"__type": "com.amazonaws.sqs#QueueDoesNotExist",
                                "message": "The specified queue does not exist."}
    # Raw garbage on a socket.
    import socket
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    s.settimeout(5)
    assert s.recv(100).startswith(b"HTTP/1.1 400")
    s.close()

    assert server.alive()
    # Every error was logged as one JSON line.
    log_lines = [json.loads(l) for l in server.read_log().splitlines() if l.startswith("{")]
    assert any(l["event"] == "sqs_error" and l["code"] == "InvalidAction" for l in log_lines)
    # Nothing was lost or changed.
    got = []
    while True:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if "Messages" not in r:
            break
        got += [m["Body"] for m in r["Messages"]]
    assert sorted(got) == sorted(bodies)


def test_keep_alive_serves_many_requests_on_one_connection(server, sqs):
    url = sqs.create_queue(QueueName=unique("keepalive"))["QueueUrl"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sock = None
    for i in range(20):
        conn.request("POST", "/", json.dumps({"QueueUrl": url, "MessageBody": f"k{i}"}),
                     {"Content-Type": "application/x-amz-json-1.0",
                      "X-Amz-Target": "AmazonSQS.SendMessage"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
        sock = sock or conn.sock
        assert conn.sock is sock  # same connection
    conn.close()


# ---- SigV4 under require_auth ----

def signed_request(server, key, secret, body, date=None):
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=server.url + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.0",
                 "X-Amz-Target": "AmazonSQS.ListQueues"})
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret),
                                     "sqs", "us-east-1")
    signer.add_auth(req)
    headers = dict(req.headers.items())
    if date:
        headers["X-Amz-Date"] = date
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/", body, headers)
    resp = conn.getresponse()
    out = resp.status, resp.getheader("x-amzn-query-error"), json.loads(resp.read() or b"{}")
    conn.close()
    return out


def test_require_auth(auth_server):
    good = make_client(auth_server.url, ACCESS_KEY, SECRET_KEY)
    url = good.create_queue(QueueName=unique("auth"))["QueueUrl"]
    good.send_message(QueueUrl=url, MessageBody="signed")

    wrong_secret = make_client(auth_server.url, ACCESS_KEY, "wrong")
    with pytest.raises(wrong_secret.exceptions.ClientError) as e:
        wrong_secret.send_message(QueueUrl=url, MessageBody="forged")
    assert error_code(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = make_client(auth_server.url, "AKIDUNKNOWN", SECRET_KEY)
    with pytest.raises(unknown.exceptions.ClientError) as e:
        unknown.list_queues()
    assert error_code(e) == "InvalidClientTokenId"

    status, _, data = raw_post(auth_server, b"{}")
    assert status == 403 and data and json.loads(data)["__type"].endswith(
        "#MissingAuthenticationToken")
    status, _, data = raw_post(auth_server, b"{}", extra={
        "Authorization": "AWS4-HMAC-SHA256 Credential=" + ACCESS_KEY})
    assert status == 400 and json.loads(data)["__type"].endswith("#IncompleteSignature")

    body = b"{}"
    assert signed_request(auth_server, ACCESS_KEY, SECRET_KEY, body)[0] == 200
    stale = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 20 * 60))
    status, query_error, data = signed_request(auth_server, ACCESS_KEY, SECRET_KEY, body,
                                               date=stale)
    assert status == 403 and query_error == "RequestExpired;Sender"

    # A tampered body fails the signature over the exact bytes received.
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=auth_server.url + "/", data=b'{"QueueNamePrefix": "a"}',
        headers={"Content-Type": "application/x-amz-json-1.0",
                 "X-Amz-Target": "AmazonSQS.ListQueues"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY),
                            "sqs", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", auth_server.port, timeout=30)
    conn.request("POST", "/", b'{"QueueNamePrefix": "b"}', dict(req.headers.items()))
    resp = conn.getresponse()
    assert resp.status == 403 and b"SignatureDoesNotMatch" in resp.read()

    # The signed message survived all of that.
    got = good.receive_message(QueueUrl=url)["Messages"]
    assert [m["Body"] for m in got] == ["signed"]
    assert auth_server.alive()
