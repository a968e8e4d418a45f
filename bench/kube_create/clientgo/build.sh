#!/usr/bin/env bash
# Builds the client-go side of bench/kube_create (main.go, pinned by go.mod /
# go.sum to k8s.io/client-go v0.35.4, the test cluster's version) into
#   ${CRUNCHER_CACHE_DIR:-$HOME/.cache/cruncher}/bench/kube_create-clientgo/<key>/
# where <key> = Go version + a hash of go.mod, go.sum, *.go and BUILD_REV.
# A second run only checks the stamp and the binary (well under a second).
# Modules come from the Go module proxy, like tools/testcluster.
# Progress goes to stderr; the last line of stdout is the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
# Bump when the build flags below change.
BUILD_REV=1

log() { printf '[kube_create/clientgo] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "step 'check toolchain': go not found in PATH"
gov="$(go env GOVERSION)"
hash="$(cd "$here" && cat go.mod go.sum ./*.go <(echo "rev=$BUILD_REV") | sha256sum | cut -c1-12)"
out="${CRUNCHER_CACHE_DIR:-$HOME/.cache/cruncher}/bench/kube_create-clientgo/${gov}_${hash}"
binary="$out/kube-create-clientgo"
stamp="$out/.built"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9   # one build at a time per key

if [ -f "$stamp" ] && [ -x "$binary" ]; then
  log "cached ($(cat "$stamp"))"
  echo "$binary"
  exit 0
fi
log "building $binary (module bench/kube_create/clientgo) ..."
t0=$SECONDS
tmp="$(mktemp -d "$out/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Same flags as tools/testcluster/build.sh (CGO off, no -trimpath), so the
# client-go packages it already compiled come out of the Go build cache.
(cd "$here" && nice -n 10 go build -ldflags "-s -w" -o "$tmp/kube-create-clientgo" .) \
  || die "step 'go build' failed in module bench/kube_create/clientgo"
mv -f "$tmp/kube-create-clientgo" "$binary"
printf 'built in %ss on %s\n' "$((SECONDS - t0))" "$(date -u +%FT%TZ)" >"$stamp"
log "built in $((SECONDS - t0))s"
echo "$binary"
