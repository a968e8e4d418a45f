#!/usr/bin/env bash
# Configures and builds one build tree.
# Usage: scripts/build.sh [DIR] [CMAKE ARGS...] [-- NINJA TARGETS...]
# Default DIR: build (Release with debug info, warnings as errors). Options
# not given keep their CMake defaults, not a previous run's cache: callers
# pass every option they rely on (scripts/test.sh, scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
cmake_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do cmake_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
launcher=()
# ccache (installed by setup.sh) keeps compiled objects across fresh clones:
# CI builds a new clone each time, and most files do not change between runs.
# base_dir makes the cache key independent of where the clone lives.
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}" CCACHE_NOHASHDIR=true
fi
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_COMPILE_WARNING_AS_ERROR=ON "${launcher[@]}" "${cmake_args[@]}" >/dev/null
# Two cores here; more jobs only add memory pressure.
ninja -C "$dir" -j "$(nproc)" "$@"
