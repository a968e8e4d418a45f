#!/usr/bin/env bash
# Configures and builds one build tree. Usage: scripts/build.sh [DIR] [CMAKE ARGS...]
# Default DIR: build (Release with debug info, warnings as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_COMPILE_WARNING_AS_ERROR=ON "$@" >/dev/null
# Two cores here; more jobs only add memory pressure.
ninja -C "$dir" -j "$(nproc)"
