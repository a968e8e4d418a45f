#!/usr/bin/env bash
# Sets everything up and runs the main job: `cruncher demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build -DCRUNCHER_BUILD_TESTS=OFF -DCRUNCHER_BUILD_BENCH=OFF
exec build/src/cli/cruncher demo "$@"
