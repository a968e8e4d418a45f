#!/usr/bin/env bash
# Sets everything up and runs every test:
#   1. set-up (Debian and Python packages), the Kubernetes test cluster's
#      binaries (built from Go modules, cached under ~/.cache/cruncher);
#   2. the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. every test (unit, integration against moto / the AWS CLI / boto3,
#      the cluster tests against the real API server) on the normal build.
# Idempotent: a second run reuses the caches and build trees.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
tools/testcluster/build.sh >/dev/null

echo "== unit tests under ASan + UBSan"
scripts/build.sh build-asan -DCRUNCHER_SANITIZE=ON -DCRUNCHER_BUILD_BENCH=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit --output-on-failure -j "$(nproc)"

echo "== all tests"
scripts/build.sh build
ctest --test-dir build --output-on-failure
