"""SQS behaviour real clients rely on (issue 13), one test per difference, driven by
boto3 and the AWS CLI against the endpoint."""
import json
import os
import subprocess
import time

import pytest

from conftest import make_client
from test_sqs_endpoint import attributes_md5, error_code, raw_post, unique


def aws_cli(server, *args, region="us-east-1"):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDDUMMY", AWS_SECRET_ACCESS_KEY="dummy",
               AWS_DEFAULT_REGION=region, AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    r = subprocess.run(["aws", "sqs", *args, "--endpoint-url", server.url, "--output", "json"],
                       env=env, capture_output=True, text=True, timeout=60)
    return r


def bodies(messages):
    return sorted(m["Body"] for m in messages)


# 1. An explicit DelaySeconds of 0 overrides the queue's delay.
def test_explicit_zero_delay_overrides_the_queue_delay(sqs):
    url = sqs.create_queue(QueueName=unique("delay0"),
                           Attributes={"DelaySeconds": "10"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
    sqs.send_message(QueueUrl=url, MessageBody="queue-delay")
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "batch-now", "DelaySeconds": 0},
        {"Id": "b", "MessageBody": "batch-queue-delay"}])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert bodies(got) == ["batch-now", "now"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "2"


# 2. MessageAttributeNames "PREFIX.*" returns the attributes whose names start with PREFIX.
def test_message_attribute_names_prefix_wildcard(sqs):
    url = sqs.create_queue(QueueName=unique("prefix"))["QueueUrl"]
    attrs = {name: {"DataType": "String", "StringValue": name}
             for name in ("Custom1", "CustomAttr", "Custom.dotted", "Other", "Cu")}
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attrs)
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["Custom.*"],
                            VisibilityTimeout=0)["Messages"][0]
    wanted = ("Custom1", "CustomAttr", "Custom.dotted")
    assert set(m["MessageAttributes"]) == set(wanted)
    assert m["MD5OfMessageAttributes"] == attributes_md5({k: attrs[k] for k in wanted})
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["Custom.dotted.*", "Other"],
                            VisibilityTimeout=0)["Messages"][0]
    assert set(m["MessageAttributes"]) == {"Custom.dotted", "Other"}
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=[".*"])["Messages"][0]
    assert set(m["MessageAttributes"]) == set(attrs)


# 3. Queues are scoped by the request's signing region; ARNs name it.
def test_queues_are_scoped_by_region(regional_server):
    home = make_client(regional_server.url, region="eu-west-1")
    west1 = make_client(regional_server.url, region="us-west-1")
    west2 = make_client(regional_server.url, region="us-west-2")
    name = unique("regional")

    url = west1.create_queue(QueueName=name)["QueueUrl"]
    assert west1.list_queues(QueueNamePrefix=name)["QueueUrls"] == [url]
    assert "QueueUrls" not in west2.list_queues(QueueNamePrefix=name)
    assert "QueueUrls" not in home.list_queues(QueueNamePrefix=name)
    with pytest.raises(west2.exceptions.QueueDoesNotExist):
        west2.get_queue_url(QueueName=name)
    with pytest.raises(west2.exceptions.QueueDoesNotExist):
        west2.send_message(QueueUrl=url, MessageBody="wrong region")
    arn = west1.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    assert arn == f"arn:aws:sqs:us-west-1:000000000000:{name}"

    # The same name in another region is another queue.
    url2 = west2.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "7"})["QueueUrl"]
    west2.send_message(QueueUrl=url2, MessageBody="in us-west-2")
    west1.send_message(QueueUrl=url, MessageBody="in us-west-1")
    assert bodies(west1.receive_message(QueueUrl=url)["Messages"]) == ["in us-west-1"]
    assert bodies(west2.receive_message(QueueUrl=url2)["Messages"]) == ["in us-west-2"]
    assert west1.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"]["VisibilityTimeout"] == "30"

    # The configured region's ARNs, and a RedrivePolicy naming a DLQ there.
    dlq = home.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    dlq_arn = home.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    assert dlq_arn == f"arn:aws:sqs:eu-west-1:000000000000:{name}-dlq"
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    src = home.create_queue(QueueName=name + "-src",
                            Attributes={"RedrivePolicy": policy})["QueueUrl"]
    got = home.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])
    assert json.loads(got["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn
    home.send_message(QueueUrl=src, MessageBody="poison")
    home.receive_message(QueueUrl=src, VisibilityTimeout=0)
    assert "Messages" not in home.receive_message(QueueUrl=src)
    assert bodies(home.receive_message(QueueUrl=dlq)["Messages"]) == ["poison"]
    # A DLQ in another region is not one this queue can use.
    with pytest.raises(home.exceptions.ClientError) as e:
        west1.create_queue(QueueName=name + "-src", Attributes={"RedrivePolicy": policy})
    assert error_code(e) == "InvalidParameterValue"

    # An unsigned request is served in the configured region.
    status, _, data = raw_post(regional_server, json.dumps(
        {"QueueNamePrefix": name}).encode())
    assert status == 200
    assert sorted(json.loads(data)["QueueUrls"]) == sorted([dlq, src])


# 4. A batch over 1 MiB in total fails as a whole, even as a single entry.
def test_oversized_batch_fails_as_a_whole(sqs):
    url = sqs.create_queue(QueueName=unique("toolong"))["QueueUrl"]
    with pytest.raises(sqs.exceptions.BatchRequestTooLong) as e:
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": "one", "MessageBody": "x" * (1024 * 1024 + 1)}])
    assert e.value.response["Error"]["Message"] == (
        "Batch requests cannot be longer than 1048576 bytes. You have sent 1048577 bytes.")
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": "a", "MessageBody": "x" * 600_000},
            {"Id": "b", "MessageBody": "y", "MessageAttributes": {
                "big": {"DataType": "String", "StringValue": "z" * 600_000}}}])
    # Larger than the endpoint reads at all: still BatchRequestTooLong.
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": "x" * 1_000_000} for i in range(3)])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


# 5. AWSTraceHeader is kept and returned when asked for.
def test_aws_trace_header_is_kept(sqs):
    url = sqs.create_queue(QueueName=unique("trace"))["QueueUrl"]
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    system = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="traced", MessageSystemAttributes=system)
    assert sent["MD5OfMessageSystemAttributes"] == attributes_md5(system)
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "t", "MessageBody": "traced too", "MessageSystemAttributes": system}])

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                              MessageSystemAttributeNames=["AWSTraceHeader"])["Messages"]
    assert bodies(got) == ["traced", "traced too"]
    assert all(m["Attributes"] == {"AWSTraceHeader": trace} for m in got)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                              MessageSystemAttributeNames=["All"])["Messages"]
    assert all(m["Attributes"]["AWSTraceHeader"] == trace for m in got)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              MessageSystemAttributeNames=["SentTimestamp"])["Messages"]
    assert all("AWSTraceHeader" not in m["Attributes"] for m in got)

    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageSystemAttributes={
            "SenderId": {"DataType": "String", "StringValue": "me"}})
    assert error_code(e) == "InvalidParameterValue"


# 6. A queue URL with no queue path names no queue.
def test_queue_url_without_a_path_does_not_exist(sqs):
    for url in ("http://whatever-incorrect-queue-address",
                "http://whatever-incorrect-queue-address/"):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            sqs.send_message(QueueUrl=url, MessageBody="x")
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])


# 7. Errors in AWS's words; receipt handles as AWS documents them.
def test_errors_in_aws_words(server, sqs):
    url = sqs.create_queue(QueueName=unique("words"))["QueueUrl"]

    def send_error(attrs):
        with pytest.raises(sqs.exceptions.ClientError) as e:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attrs)
        assert error_code(e) == "InvalidParameterValue"
        return e.value.response["Error"]["Message"]

    assert send_error({"x": {"DataType": "String", "StringValue": ""}}) == (
        "The message attribute 'x' must contain non-empty message attribute value "
        "for message attribute type 'String'.")
    assert send_error({"x": {"DataType": "Text", "StringValue": "v"}}) == (
        "The message attribute 'x' has an invalid message attribute type, the set of "
        "supported type prefixes is Binary, Number, and String.")
    assert send_error({"x": {"DataType": "", "StringValue": "v"}}) == (
        "The message attribute 'x' must contain non-empty message attribute type.")
    assert send_error({"n": {"DataType": "Number", "StringValue": "abc"}}) == (
        "Can't cast the value of message (user) attribute 'n' to a number.")

    # Queue names: AWS's sentence alone; an empty name is invalid, not missing.
    for bad in ("bad name!", "x" * 81, ""):
        with pytest.raises(sqs.exceptions.ClientError) as e:
            sqs.create_queue(QueueName=bad)
        assert error_code(e) == "InvalidParameterValue"
        assert e.value.response["Error"]["Message"] == (
            "Can only include alphanumeric characters, hyphens, or underscores. "
            "1 to 80 in length")
    r = aws_cli(server, "create-queue", "--queue-name", "no.dots")
    assert r.returncode != 0
    assert "InvalidParameterValue" in r.stderr and "1 to 80 in length" in r.stderr

    # An expired handle cannot change visibility: MessageNotInflight.
    sqs.send_message(QueueUrl=url, MessageBody="m")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"][0]
    time.sleep(1.2)
    with pytest.raises(sqs.exceptions.MessageNotInflight):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"],
                                      VisibilityTimeout=30)
    # A stale one (delivered again since): the delete succeeds, the message stays.
    second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    r = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "stale", "ReceiptHandle": first["ReceiptHandle"]}])
    assert [s["Id"] for s in r["Successful"]] == ["stale"] and not r.get("Failed")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


# 8. Tags and the Policy / RedriveAllowPolicy attributes, stored verbatim.
def test_tags_and_policies_are_stored(server, sqs):
    name = unique("tagged")
    url = sqs.create_queue(QueueName=name, tags={"team": "batch", "env": "dev"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "batch", "env": "dev"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "prod", "cost": "42"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team", "absent"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "prod", "cost": "42"}
    with pytest.raises(sqs.exceptions.ClientError) as e:
        sqs.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(50)})
    assert error_code(e) == "InvalidParameterValue"
    assert e.value.response["Error"]["Message"] == f"Too many tags added for queue {name}."
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.list_queue_tags(QueueUrl=url + "-missing")

    # The AWS CLI, as infrastructure tools use it.
    r = aws_cli(server, "tag-queue", "--queue-url", url, "--tags", "owner=ops")
    assert r.returncode == 0, r.stderr
    r = aws_cli(server, "list-queue-tags", "--queue-url", url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Tags"] == {"env": "prod", "cost": "42", "owner": "ops"}
    r = aws_cli(server, "untag-queue", "--queue-url", url, "--tag-keys", "env", "cost", "owner")
    assert r.returncode == 0, r.stderr
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)

    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    # Verbatim: spacing and key order as sent.
    policy = ('{"Version": "2012-10-17",  "Statement": [{"Effect": "Allow", '
              '"Principal": "*", "Action": "sqs:SendMessage", "Resource": "' + arn + '"}]}')
    allow = '{"redrivePermission": "denyAll"}'
    with_policy = sqs.create_queue(QueueName=name + "-p", Attributes={
        "Policy": policy, "RedriveAllowPolicy": allow})["QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=with_policy, AttributeNames=["All"])["Attributes"]
    assert got["Policy"] == policy and got["RedriveAllowPolicy"] == allow
    # Same attributes again: the same queue; a different policy: QueueNameExists.
    assert sqs.create_queue(QueueName=name + "-p",
                            Attributes={"Policy": policy})["QueueUrl"] == with_policy
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name + "-p", Attributes={"Policy": "{}"})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert got == {"Policy": policy}
    # Not enforced: a policy that allows nothing changes nothing.
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(
        {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sqs:*"}]})})
    sqs.send_message(QueueUrl=url, MessageBody="still allowed")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
