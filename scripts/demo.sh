#!/usr/bin/env bash
# Sets everything up and runs the main job: `cruncher demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/build-options.sh
scripts/build.sh build "${CRUNCHER_NORMAL_OPTIONS[@]}" -- cruncher
exec build/src/cli/cruncher demo "$@"
