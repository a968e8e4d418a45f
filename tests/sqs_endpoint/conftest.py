"""Fixtures: the endpoint test server (from $SQS_ENDPOINT_SERVER) and clients."""
import os
import shutil
import subprocess
import tempfile

import boto3
import botocore.config
import pytest

ACCESS_KEY = "AKIDCRUNCHERTEST"
SECRET_KEY = "cruncher-test-secret"


class Server:
    def __init__(self, *extra):
        binary = os.environ.get("SQS_ENDPOINT_SERVER")
        if not binary or not os.access(binary, os.X_OK):
            pytest.fail("SQS_ENDPOINT_SERVER does not name the built "
                        "cruncher_sqs_endpoint_test_server (run through ctest)")
        self.data_dir = tempfile.mkdtemp(prefix="sqs-endpoint-test-")
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, self.data_dir, "0", *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}; log: {self.read_log()}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def read_log(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def make_client(url, key="AKIDDUMMY", secret="dummy", retries=0, region="us-east-1"):
    return boto3.client(
        "sqs", endpoint_url=url, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"total_max_attempts": retries + 1},
                                      read_timeout=60, max_pool_connections=32))


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    assert s.alive(), "the endpoint died during the tests"
    s.stop()


@pytest.fixture(scope="module")
def auth_server():
    s = Server("--auth", f"{ACCESS_KEY}:{SECRET_KEY}")
    yield s
    assert s.alive(), "the endpoint died during the tests"
    s.stop()


@pytest.fixture(scope="module")
def regional_server():
    """An endpoint whose configured region is not us-east-1."""
    s = Server("--region", "eu-west-1")
    yield s
    assert s.alive(), "the endpoint died during the tests"
    s.stop()


@pytest.fixture
def sqs(server):
    return make_client(server.url)
