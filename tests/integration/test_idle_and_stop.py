"""Issue 8: the controller loop long-polls, and SIGTERM stops it at once.

An idle receiver should cost about 3 ReceiveMessage calls a minute (20 s long
polls), not 60 (the old 1 s short-poll hack that kept Stop() prompt); and
SIGTERM must stop `watch` (SQS, in the middle of a long poll) and `local
serve` within a second. SQS is moto_server, started here on a free port,
behind a small counting proxy that tells ReceiveMessage calls apart by their
X-Amz-Target header (moto's own log lines show only "POST /").
"""
import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from conftest import BIN, Server, wait_for

IDLE_SECONDS = 60
AWS_ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingProxy:
    """Forwards every request to `upstream` and counts them by SQS operation."""

    def __init__(self, upstream_port):
        self.counts = collections.Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                with proxy.lock:
                    proxy.counts[operation] += 1
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                try:
                    upstream = http.client.HTTPConnection("127.0.0.1", upstream_port,
                                                          timeout=60)
                    upstream.request("POST", self.path, body, headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                    upstream.close()
                    self.send_response(reply.status)
                    for k, v in reply.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection",
                                             "content-length", "server", "date"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (OSError, http.client.HTTPException):
                    # The client gave up (a stopped long poll), or moto is
                    # being stopped at the end of the test.
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, operation):
        with self.lock:
            return self.counts[operation]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sqs(tmp_path):
    """(proxy, queue URL): an empty moto queue reached through the proxy."""
    port = free_port()
    log = open(tmp_path / "moto.log", "w")
    moto = subprocess.Popen(["moto_server", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"

    def up():
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            return True
        except OSError:
            return False

    proxy = None
    try:
        wait_for(up, timeout=60, interval=0.2, what="moto_server to listen")
        client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        url = client.create_queue(QueueName="idle")["QueueUrl"]
        proxy = CountingProxy(port)
        yield proxy, url
    finally:
        if proxy:
            proxy.close()
        moto.terminate()
        moto.wait(timeout=10)
        log.close()


def start_watch(tmp_path, template, proxy, url):
    log = open(tmp_path / "watch.log", "w+")
    proc = subprocess.Popen(
        [BIN, "watch", "--queue-url", url, "--endpoint-url", proxy.url, "--backend", "local",
         "--template", str(template), "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, env=AWS_ENV, start_new_session=True)
    return proc, log


def stop_and_time(proc, timeout=30):
    """SIGTERM; returns the seconds until the process exited."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=timeout)
    return time.monotonic() - start


def stopped_line(text):
    return next(json.loads(line) for line in text.splitlines()
                if '"event":"stopped"' in line)


def test_watch_long_polls_an_idle_sqs_queue(tmp_path, template, sqs):
    proxy, url = sqs
    proc, log = start_watch(tmp_path, template, proxy, url)
    try:
        wait_for(lambda: proxy.count("ReceiveMessage") >= 1, timeout=30,
                 what="the first ReceiveMessage")
        start = time.monotonic()
        first = proxy.count("ReceiveMessage")
        time.sleep(IDLE_SECONDS)
        calls = proxy.count("ReceiveMessage") - first + 1
        print(f"ReceiveMessage calls in {time.monotonic() - start:.0f} s idle: {calls}")
        assert proc.poll() is None, log.read()
    finally:
        if proc.poll() is None:
            stop_and_time(proc)
    # 20 s long polls: 3 a minute (4 if the minute straddles one more).
    assert 2 <= calls <= 4, calls
    log.seek(0)
    assert proc.returncode == 0, log.read()


def test_sigterm_stops_watch_in_the_middle_of_a_long_poll(tmp_path, template, sqs):
    proxy, url = sqs
    proc, log = start_watch(tmp_path, template, proxy, url)
    try:
        wait_for(lambda: proxy.count("ReceiveMessage") >= 1, timeout=30,
                 what="the first ReceiveMessage")
        time.sleep(1)  # well inside the 20 s wait
        assert proxy.count("ReceiveMessage") == 1
        seconds = stop_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"watch (SQS) stopped {seconds:.3f} s after SIGTERM")
    log.seek(0)
    text = log.read()
    assert proc.returncode == 0, text
    assert seconds < 2, text
    assert stopped_line(text)["receive_calls"] == 1


def test_local_serve_long_polls_an_idle_queue(data_dir, template):
    server = Server(data_dir, template)
    try:
        wait_for(lambda: '"event":"serving"' in server.logs(), what="serving")
        time.sleep(IDLE_SECONDS)
        assert server.proc.poll() is None, server.logs()
        assert server.stop() == 0, server.logs()
    finally:
        server.stop(signal.SIGKILL)
    calls = stopped_line(server.logs())["receive_calls"]
    print(f"local queue receives in {IDLE_SECONDS} s idle: {calls}")
    assert 2 <= calls <= 4, server.logs()


def test_sigterm_stops_local_serve_at_once(data_dir, template):
    server = Server(data_dir, template)
    try:
        wait_for(lambda: '"event":"serving"' in server.logs(), what="serving")
        time.sleep(1)  # the dispatcher is in its long poll
        seconds = stop_and_time(server.proc)
    finally:
        server.stop(signal.SIGKILL)
    print(f"local serve stopped {seconds:.3f} s after SIGTERM")
    assert server.proc.returncode == 0, server.logs()
    assert seconds < 2, server.logs()
    # One receive, still waiting when the stop came: the stop ended the wait.
    assert stopped_line(server.logs())["receive_calls"] == 1, server.logs()
