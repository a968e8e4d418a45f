#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# (the client at the server's version: no skew, and none to install) and kwok
# from the pinned Go modules in kube/, etcd/, kwok/ into
#   ${CRUNCHER_CACHE_DIR:-$HOME/.cache/cruncher}/testcluster/<versions>/bin
# Idempotent: a component whose stamp is present is only checked.
# Progress goes to stderr; the last line of stdout is the bin directory.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

command -v go >/dev/null || tc_die "step 'check toolchain': go not found in PATH"
bin="$(tc_bin_dir)"
mkdir -p "$bin"
exec 9>"$bin/.lock"
flock 9   # one build at a time per cache directory

staging_minor="${KUBE_VERSION#v1.}"; staging_minor="${staging_minor%%.*}"
kube_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$staging_minor -X $p.gitTreeState=clean"
done
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION"

# The file name `go build -o DIR/` gives a main package: its last path element,
# or the one before it when that is a major-version suffix (.../server/v3).
go_bin_name() {
  local p="$1" last="${1##*/}"
  if [[ "$last" =~ ^v[0-9]+$ ]]; then p="${p%/*}"; last="${p##*/}"; fi
  printf '%s' "$last"
}

# build_component NAME MODULE-DIR LDFLAGS PKG[=OUTNAME]...
build_component() {
  local name="$1" moddir="$2" ldflags="$3"; shift 3
  local stamp="$bin/.built-$name" outs=() pkgs=() a
  for a in "$@"; do
    pkgs+=("${a%%=*}")
    if [[ "$a" == *=* ]]; then outs+=("${a#*=}"); else outs+=("$(go_bin_name "$a")"); fi
  done
  if [ -f "$stamp" ]; then
    local ok=1 o
    for o in "${outs[@]}"; do [ -x "$bin/$o" ] || ok=0; done
    if [ "$ok" = 1 ]; then tc_log "$name: cached ($(cat "$stamp"))"; return 0; fi
  fi
  local tmp t0=$SECONDS
  tmp="$(mktemp -d "$bin/.tmp-$name.XXXXXX")"
  tc_log "$name: building ${pkgs[*]} (module tools/testcluster/$moddir) ..."
  if ! (cd "$TC_DIR/$moddir" && nice -n 10 go build -p "$(nproc)" -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"); then
    rm -rf "$tmp"
    tc_die "step 'go build $name' failed in module tools/testcluster/$moddir (packages: ${pkgs[*]})"
  fi
  local i
  for i in "${!pkgs[@]}"; do
    mv -f "$tmp/$(go_bin_name "${pkgs[$i]}")" "$bin/${outs[$i]}"
  done
  rm -rf "$tmp"
  printf 'built in %ss on %s\n' "$((SECONDS - t0))" "$(date -u +%FT%TZ)" >"$stamp"
  tc_log "$name: built in $((SECONDS - t0))s"
}

tc_log "cache: $bin"
build_component etcd etcd "-s -w" go.etcd.io/etcd/server/v3=etcd
build_component kwok kwok "$kwok_ldflags" sigs.k8s.io/kwok/cmd/kwok
build_component kube kube "$kube_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl

for b in etcd kwok kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  [ -x "$bin/$b" ] || tc_die "step 'verify': $bin/$b missing after build"
done
tc_log "all binaries ready"
echo "$bin"
