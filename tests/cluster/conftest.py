"""Prints the cluster's measured timings at the end of a tests/cluster run."""


def pytest_terminal_summary(terminalreporter):
    try:
        from test_testcluster import MEASUREMENTS
    except ImportError:
        return
    if MEASUREMENTS:
        terminalreporter.section("testcluster timings")
        for k, v in MEASUREMENTS.items():
            terminalreporter.write_line(f"{k}: {v}")
