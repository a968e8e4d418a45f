#!/usr/bin/env python3
"""Runs the SQS client's emulator test (aws_moto_test) against the SQS endpoint
of a real `cruncher local serve`, so the same client test passes against both
moto and our own server.

Usage: run_against_local_serve.py CRUNCHER_BIN AWS_MOTO_TEST_BIN
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: t-
spec:
  template:
    spec:
      containers:
      - name: c
        image: busybox
        command: ["true"]
"""


def main():
    cruncher, test_bin = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="cruncher-aws-") as tmp:
        template = Path(tmp) / "job.yaml"
        template.write_text(TEMPLATE)
        log_path = Path(tmp) / "serve.log"
        with open(log_path, "w+") as log:
            serve = subprocess.Popen(
                [cruncher, "local", "serve", "--data-dir", f"{tmp}/data",
                 "--template", str(template), "--sqs-port", "0"],
                stdout=log, stderr=subprocess.STDOUT)
            try:
                endpoint = None
                deadline = time.monotonic() + 30
                while endpoint is None and time.monotonic() < deadline:
                    if serve.poll() is not None:
                        sys.exit("local serve exited:\n" + log_path.read_text())
                    for line in log_path.read_text().splitlines():
                        event = json.loads(line)
                        if event.get("event") == "serving":
                            endpoint = event["sqs"]["endpoint_url"]
                    time.sleep(0.05)
                if endpoint is None:
                    sys.exit("local serve did not report its SQS endpoint")
                print(f"running {test_bin} against local serve at {endpoint}", flush=True)
                env = dict(os.environ, CRUNCHER_SQS_TEST_ENDPOINT=endpoint)
                env.pop("CRUNCHER_STS_TEST_ENDPOINT", None)
                return subprocess.run([test_bin], env=env).returncode
            finally:
                serve.terminate()
                serve.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
