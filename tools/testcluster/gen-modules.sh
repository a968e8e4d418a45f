#!/usr/bin/env bash
# Regenerates the three consumer Go modules (kube/, etcd/, kwok/) from the
# versions pinned in versions.env.  No git clone: everything comes from the Go
# module proxy through `go mod download -json`.
#
# Why three modules: kwok v0.8.0 requires the k8s.io/* v0.36 libraries, while
# the pinned kube release wants its own staging modules at v0.<minor>.x, and
# etcd's server pins its own grpc/otel set. Each binary therefore gets exactly
# the dependency versions of its own upstream release.
#
# Why explicit replaces for kube: k8s.io/kubernetes' go.mod requires its
# staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces
# them with ./staging/src/... paths. Replace directives of a dependency are
# ignored, so a consumer module must repeat them, pointing each staging module
# at its published tag v0.<minor>.<patch> matching the release.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

step() { printf '[gen-modules] %s\n' "$*" >&2; }
die() { printf '[gen-modules] ERROR: %s\n' "$*" >&2; exit 1; }

staging_version="v0.${KUBE_VERSION#v1.}"   # v1.35.4 -> v0.35.4

# --- kube -----------------------------------------------------------------
step "downloading k8s.io/kubernetes@$KUBE_VERSION metadata"
kube_gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("GoMod") or sys.exit(d.get("Error","no GoMod")))')" \
  || die "go mod download k8s.io/kubernetes@$KUBE_VERSION failed"
mapfile -t staging < <(go mod edit -json "$kube_gomod" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for r in d.get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])
')
[ "${#staging[@]}" -gt 0 ] || die "no staging replaces found in $kube_gomod"
step "k8s.io/kubernetes@$KUBE_VERSION: ${#staging[@]} staging modules -> $staging_version"
go_directive="$(go mod edit -json "$kube_gomod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')"
# The release builds with its own `godebug default=goX.Y`; keep it (the main
# module's godebug lines are what count for the binaries).
mapfile -t godebugs < <(go mod edit -json "$kube_gomod" | python3 -c '
import json, sys
for g in json.load(sys.stdin).get("GoDebug") or []:
    print(g["Key"] + "=" + g["Value"])
')

gen_module() { # dir module-path go-version
  local dir="$here/$1"
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (cd "$dir" && go mod init "$2" >/dev/null 2>&1 && go mod edit -go="$3")
  # tools.go-free: the `tool` directive (Go >= 1.24) records the binaries.
}

gen_module kube cruncher.dev/testcluster/kube "$go_directive"
(
  cd "$here/kube"
  go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
  for g in "${godebugs[@]}"; do go mod edit -godebug="$g"; done
  for m in "${staging[@]}"; do
    go mod edit -replace="$m=$m@$staging_version"
  done
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go mod edit -tool="k8s.io/kubernetes/cmd/$t"
  done
  step "go mod tidy (kube) — this downloads the dependency graph"
  nice -n 10 go mod tidy || die "go mod tidy failed for module kube (k8s.io/kubernetes@$KUBE_VERSION)"
)

# --- etcd -----------------------------------------------------------------
gen_module etcd cruncher.dev/testcluster/etcd 1.26
(
  cd "$here/etcd"
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod edit -tool="go.etcd.io/etcd/server/v3"
  step "go mod tidy (etcd)"
  nice -n 10 go mod tidy || die "go mod tidy failed for module etcd (go.etcd.io/etcd/server/v3@$ETCD_VERSION)"
)

# --- kwok -----------------------------------------------------------------
gen_module kwok cruncher.dev/testcluster/kwok 1.26
(
  cd "$here/kwok"
  go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION"
  go mod edit -tool="sigs.k8s.io/kwok/cmd/kwok"
  step "go mod tidy (kwok)"
  nice -n 10 go mod tidy || die "go mod tidy failed for module kwok (sigs.k8s.io/kwok@$KWOK_VERSION)"
)
step "done: kube/ etcd/ kwok/ go.mod and go.sum regenerated"
