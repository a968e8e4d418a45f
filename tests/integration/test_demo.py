"""`cruncher demo` runs the seed's parts 2 and 3 and checks its own outcome."""
from conftest import run


def test_demo_runs_end_to_end():
    p = run("demo", timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert out.count("Complete") >= 2 and "BackoffLimitExceeded" in out
    assert "this.is.also.invalid" in out and "requeued as message" in out
    assert "4 finished Jobs deleted" in out
    assert "Demo complete." in out
