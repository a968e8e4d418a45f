"""Helpers shared by the Python benchmark harnesses under bench/ (the test
cluster, kubectl, child programs, CPU and memory figures, tables). Harnesses
put bench/ on sys.path and import `common.cluster` / `common.proc`."""
