#!/usr/bin/env bash
# Sets everything up and runs every test:
#   set-up       Debian and Python packages (scripts/setup.sh);
#   testcluster  the Kubernetes test cluster's binaries (built from Go
#                modules once, cached under ~/.cache/cruncher);
#   format       clang-format with the repo's config: any difference fails;
#   asan         the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer;
#   tsan         the unit tests under ThreadSanitizer (suppressions, each with
#                its reason, in tests/tsan.supp);
#   build        the normal build (warnings as errors, benchmarks too);
#   tidy         clang-tidy with the repo's config on src/ and tests/ (files
#                unchanged since a clean pass are skipped): a finding fails;
#   tests        everything that is not a unit test (integration against moto,
#                the AWS CLI and boto3, the SQS endpoint, the cluster tests
#                against the real API server), two at a time.
# Prints a table of each stage's time at the end. Every build tree is
# configured with all of its options, so a tree left by another command (the
# demo) cannot switch tests off, and ctest fails when it finds no tests.
# Idempotent: a second run reuses the caches and build trees.
#
# `scripts/test.sh --list` does the set-up and the normal build, then lists
# the tests of the last stage without running them (used by the test of the
# README's two commands).
set -euo pipefail
cd "$(dirname "$0")/.."

# The options of the normal tree, shared with scripts/demo.sh.
. scripts/build-options.sh

stage_names=()
stage_seconds=()
run_stage() {
  local name="$1" start=$SECONDS
  shift
  echo "== $name"
  "$@"
  stage_names+=("$name")
  stage_seconds+=($((SECONDS - start)))
}
print_stages() {
  local i total=0
  echo
  printf '%-12s %8s\n' stage seconds
  for i in "${!stage_names[@]}"; do
    printf '%-12s %8d\n' "${stage_names[$i]}" "${stage_seconds[$i]}"
    total=$((total + stage_seconds[i]))
  done
  printf '%-12s %8d\n' total "$total"
}
trap print_stages EXIT

run_stage set-up scripts/setup.sh

if [ "${1:-}" = "--list" ]; then
  run_stage build scripts/build.sh build "${CRUNCHER_NORMAL_OPTIONS[@]}"
  ctest --test-dir build -N --no-tests=error -LE unit
  exit 0
fi

build_cluster() { tools/testcluster/build.sh >/dev/null; }
check_format() {
  local bad
  bad="$(git ls-files '*.cc' '*.h' | xargs clang-format --dry-run 2>&1 | grep -c ': warning:' || true)"
  if [ "$bad" != 0 ]; then
    git ls-files '*.cc' '*.h' | xargs clang-format --dry-run 2>&1 | grep ': warning:' | head -20
    echo "clang-format: $bad places differ from .clang-format; run: git ls-files '*.cc' '*.h' | xargs clang-format -i" >&2
    return 1
  fi
}
unit_asan() {
  scripts/build.sh build-asan -DCRUNCHER_SANITIZE=ON -DCRUNCHER_TSAN=OFF \
    -DCRUNCHER_BUILD_TESTS=ON -DCRUNCHER_BUILD_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L unit --no-tests=error --output-on-failure -j "$(nproc)"
}
unit_tsan() {
  scripts/build.sh build-tsan -DCRUNCHER_TSAN=ON -DCRUNCHER_SANITIZE=OFF \
    -DCRUNCHER_BUILD_TESTS=ON -DCRUNCHER_BUILD_BENCH=OFF
  # EveryOperationSurvivesEveryBadField is a single-threaded sweep of bad
  # request fields (3 minutes under TSan, no threads to check): the asan
  # stage runs it.
  TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
    ctest --test-dir build-tsan -L unit --no-tests=error --output-on-failure \
    -j "$(nproc)" -E 'EveryOperationSurvivesEveryBadField'
}
other_tests() {
  ctest --test-dir build -LE unit --no-tests=error --output-on-failure -j 2
}

run_stage testcluster build_cluster
run_stage format check_format
run_stage asan unit_asan
run_stage tsan unit_tsan
run_stage build scripts/build.sh build "${CRUNCHER_NORMAL_OPTIONS[@]}"
run_stage tidy scripts/tidy.py build
run_stage tests other_tests
