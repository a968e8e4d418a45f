"""The README's two commands, run in its order on a fresh clone.

Regression: `scripts/demo.sh` configured `build/` with tests off and
`scripts/test.sh` reused that cache, so its last stage found no tests and
passed. Here the demo runs first in a fresh clone, then the test command's
`--list` mode (set-up and the normal build, then the test list of its last
stage) must find the integration tests. Objects come from ccache, so this
costs mostly linking.
"""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_then_test_command_finds_every_test(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = dict(os.environ, CRUNCHER_DATA_DIR=str(tmp_path / "data"))
    demo = subprocess.run(["scripts/demo.sh"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Demo complete." in demo.stdout

    listed = subprocess.run(["scripts/test.sh", "--list"], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    names = [line.split(":", 1)[1].strip() for line in listed.stdout.splitlines()
             if line.strip().startswith("Test") and "#" in line]
    assert "integration_cli" in names, listed.stdout
    assert "sqs_endpoint_sqs_endpoint" in names, listed.stdout
    assert any(n.startswith("cluster_") for n in names), listed.stdout
    assert "No tests were found" not in listed.stdout + listed.stderr
