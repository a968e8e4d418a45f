#!/usr/bin/env bash
# Usage: with-cluster.sh CMD [ARGS...]
# Starts a test cluster in a fresh data directory, runs CMD with KUBECONFIG
# and TESTCLUSTER_DIR exported, stops the cluster and exits with CMD's status.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ "$#" -gt 0 ] || { echo "usage: with-cluster.sh CMD [ARGS...]" >&2; exit 2; }

data="$(mktemp -d "${TMPDIR:-/tmp}/cruncher-testcluster.XXXXXX")"
# shellcheck disable=SC2317  # called from the EXIT trap
stop() { "$here/stop.sh" "$data" >&2 || true; }
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! kubeconfig="$("$here/start.sh" "$data" | tail -n1)"; then
  # start.sh already stopped what it started and kept the logs
  trap - EXIT
  echo "with-cluster.sh: cluster failed to start (logs in $data/logs)" >&2
  exit 1
fi
# CMD gets the kubectl built at the server's version first on its PATH.
export KUBECONFIG="$kubeconfig" TESTCLUSTER_DIR="$data"
PATH="$("$here/build.sh" | tail -n1):$PATH"
export PATH
set +e
"$@"
status=$?
set -e
exit "$status"
