"""Shared pieces of the tests/cluster modules: a cluster per module, and the
cluster's measured timings printed at the end of a run."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from test_testcluster import TC, Cluster, _run


def pytest_terminal_summary(terminalreporter):
    try:
        from test_testcluster import MEASUREMENTS
    except ImportError:
        return
    if MEASUREMENTS:
        terminalreporter.section("testcluster timings")
        for k, v in MEASUREMENTS.items():
            terminalreporter.write_line(f"{k}: {v}")


@pytest.fixture(scope="module")
def kube():
    """A cluster of this module's own (test_testcluster.py stops its one)."""
    build = subprocess.run([str(TC / "build.sh")], capture_output=True, text=True,
                           timeout=3 * 3600)
    if build.returncode != 0:
        pytest.fail(f"build.sh failed:\n{build.stderr[-4000:]}")
    bindir = build.stdout.strip().splitlines()[-1]
    os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]
    data_dir = Path(tempfile.mkdtemp(prefix="cruncher-testcluster-module."))
    start = subprocess.run([str(TC / "start.sh"), str(data_dir)], capture_output=True,
                           text=True, timeout=300, env={**os.environ, "KEEP": "1"})
    if start.returncode != 0:
        _run([str(TC / "stop.sh"), str(data_dir)], check=False, timeout=120)
        pytest.fail(f"start.sh failed:\n{start.stderr[-6000:]}")
    c = Cluster(data_dir, Path(start.stdout.strip().splitlines()[-1]), 0.0)
    try:
        yield c
    finally:
        c.stop()
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)
