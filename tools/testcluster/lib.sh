# Shared helpers for the testcluster scripts (sourced, not executed).
# shellcheck shell=bash
TC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$TC_DIR/versions.env"

tc_log() { printf '[testcluster] %s\n' "$*" >&2; }
tc_die() { printf '[testcluster] ERROR: %s\n' "$*" >&2; exit 1; }

# Bump when build.sh changes how binaries are built (flags, ldflags).
TC_BUILD_REV=1
# The cache key: pinned versions + Go version + a hash of the module files and
# TC_BUILD_REV, so regenerating go.mod/go.sum, a new Go or new build flags
# builds into a fresh directory.
tc_cache_key() {
  local gov h
  gov="$(go env GOVERSION)"
  h="$(cat "$TC_DIR"/{kube,etcd,kwok}/go.{mod,sum} <(echo "rev=$TC_BUILD_REV") | sha256sum | cut -c1-12)"
  printf 'kube-%s_etcd-%s_kwok-%s_%s_%s' "$KUBE_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$gov" "$h"
}

tc_bin_dir() {
  printf '%s/testcluster/%s/bin' "${CRUNCHER_CACHE_DIR:-$HOME/.cache/cruncher}" "$(tc_cache_key)"
}
