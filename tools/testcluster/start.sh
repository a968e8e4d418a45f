#!/usr/bin/env bash
# Starts a Kubernetes control plane on free 127.0.0.1 ports:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
# plus fake t3.medium-shaped nodes in three zones, then waits until the API
# server is ready, the nodes are Ready and a probe Job has completed.
#
# Usage: start.sh [DATA_DIR]      (or TESTCLUSTER_DIR=...; default: a new
#                                  mktemp directory under ${TMPDIR:-/tmp})
# Env:   TESTCLUSTER_NODES_PER_ZONE  fake nodes per zone (default 1)
#        TESTCLUSTER_ZONES           zones (default "us-east-1a us-east-1b us-east-1c")
#        TESTCLUSTER_READY_TIMEOUT   seconds to wait for each step (default 60)
#        CRUNCHER_CACHE_DIR          binary cache root (default ~/.cache/cruncher)
#        KEEP=1                      on failure keep DATA_DIR (always kept on success)
# Output: progress on stderr; the admin kubeconfig path as the LAST line of
# stdout. Pids in DATA_DIR/pids, ports in DATA_DIR/ports, logs in
# DATA_DIR/logs/<component>.log. Stop with stop.sh DATA_DIR.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

t_start=$(date +%s.%N)
timeout_s="${TESTCLUSTER_READY_TIMEOUT:-60}"
per_zone="${TESTCLUSTER_NODES_PER_ZONE:-1}"
zones="${TESTCLUSTER_ZONES:-us-east-1a us-east-1b us-east-1c}"

bin="$("$TC_DIR/build.sh" | tail -n1)" || tc_die "step 'build' failed (see above)"
# The kubectl built beside the server: same version, nothing to install.
export PATH="$bin:$PATH"

data="${1:-${TESTCLUSTER_DIR:-}}"
if [ -z "$data" ]; then
  data="$(mktemp -d "${TMPDIR:-/tmp}/cruncher-testcluster.XXXXXX")"
fi
mkdir -p "$data"
data="$(cd "$data" && pwd)"
if [ -s "$data/pids" ]; then
  tc_die "step 'prepare': $data/pids exists: a cluster may be running there (stop.sh $data first)"
fi
mkdir -p "$data/logs" "$data/pki" "$data/etcd"
: >"$data/pids"
: >"$data/ports"
logs="$data/logs"
pki="$data/pki"

# ---- failure handling -----------------------------------------------------
current=""
fail() {
  local msg="$1"
  tc_log "ERROR: $msg"
  if [ -n "$current" ] && [ -f "$logs/$current.log" ]; then
    tc_log "---- last 40 lines of $logs/$current.log ----"
    tail -n 40 "$logs/$current.log" >&2 || true
    tc_log "---- end of $current.log ----"
  fi
  KEEP="${KEEP:-1}" "$TC_DIR/stop.sh" "$data" >&2 || true
  tc_log "logs kept in $logs"
  exit 1
}
trap 'fail "interrupted"' INT TERM

# ---- ports ----------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
declare -A port
for c in etcd-client etcd-peer apiserver controller-manager scheduler; do
  while :; do
    p="$(free_port)"
    # avoid handing the same port to two components
    if ! grep -qx ".*=$p" "$data/ports"; then break; fi
  done
  port[$c]=$p
  echo "$c=$p" >>"$data/ports"
done

# ---- credentials ----------------------------------------------------------
current=""
(
  set -e
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 \
    -subj "/CN=cruncher-testcluster-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
    -subj "/CN=kube-apiserver" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out apiserver.crt -days 7 -extfile apiserver.ext 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
) || fail "step 'certificates' (openssl) failed"
token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
# token,user,uid,"groups"
printf '%s,admin,admin-uid,"system:masters"\n' "$token" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"

server="https://127.0.0.1:${port[apiserver]}"
kubeconfig="$data/kubeconfig"
{
  kubectl config set-cluster testcluster --server="$server" \
    --certificate-authority="$pki/ca.crt" --embed-certs=true --kubeconfig="$kubeconfig"
  kubectl config set-credentials admin --token="$token" --kubeconfig="$kubeconfig"
  kubectl config set-context testcluster --cluster=testcluster --user=admin \
    --kubeconfig="$kubeconfig"
  kubectl config use-context testcluster --kubeconfig="$kubeconfig"
} >/dev/null || fail "step 'kubeconfig' failed"
chmod 600 "$kubeconfig"

# ---- process helpers ------------------------------------------------------
# launch NAME CMD...: background, stdin from /dev/null, output to the log.
# The command line is kept in DATA_DIR/cmd/NAME for component.sh (restarts).
launch() {
  local name="$1"; shift
  current="$name"
  mkdir -p "$data/cmd"
  printf '%q ' "$@" >"$data/cmd/$name"
  "$@" </dev/null >>"$logs/$name.log" 2>&1 &
  echo "$name $!" >>"$data/pids"
  tc_log "started $name (pid $!)"
}
pid_of() { awk -v n="$1" '$1 == n {print $2}' "$data/pids"; }
alive() { # not gone and not a zombie
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
# wait_for NAME DESCRIPTION CMD...: retry CMD until it succeeds, failing if
# the component's process dies or the timeout passes.
wait_for() {
  local name="$1" what="$2"; shift 2
  local pid deadline=$((SECONDS + timeout_s))
  current="$name"
  pid="$(pid_of "$name")"
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! alive "$pid"; then fail "$name exited while waiting for $what"; fi
    if [ "$SECONDS" -ge "$deadline" ]; then fail "timed out after ${timeout_s}s waiting for $what"; fi
    sleep 0.2
  done
  tc_log "$what: ok"
}
kc() { kubectl --kubeconfig="$kubeconfig" --request-timeout=10s "$@"; }

# ---- etcd -----------------------------------------------------------------
etcd_url="http://127.0.0.1:${port[etcd-client]}"
launch etcd "$bin/etcd" \
  --name=testcluster \
  --data-dir="$data/etcd" \
  --listen-client-urls="$etcd_url" \
  --advertise-client-urls="$etcd_url" \
  --listen-peer-urls="http://127.0.0.1:${port[etcd-peer]}" \
  --initial-advertise-peer-urls="http://127.0.0.1:${port[etcd-peer]}" \
  --initial-cluster="testcluster=http://127.0.0.1:${port[etcd-peer]}" \
  --initial-cluster-state=new \
  --unsafe-no-fsync \
  --quota-backend-bytes=2147483648 \
  --log-level=warn
wait_for etcd "etcd health" curl -sf "$etcd_url/health"

# ---- kube-apiserver --------------------------------------------------------
# TaintNodesByCondition is off: it taints every new Node not-ready, and only
# the node-lifecycle controller (not run here) would remove the taint.
# --endpoint-reconciler-type=none: the `kubernetes` Endpoints may not hold a
# loopback address.
launch kube-apiserver "$bin/kube-apiserver" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="${port[apiserver]}" \
  --etcd-servers="$etcd_url" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --anonymous-auth=true \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,LimitRanger,DefaultTolerationSeconds,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
  --disable-admission-plugins=TaintNodesByCondition \
  --endpoint-reconciler-type=none \
  --profiling=false \
  --v=1
wait_for kube-apiserver "kube-apiserver /readyz" \
  curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz"

# ---- controller manager, scheduler, kwok ------------------------------------
launch kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="${port[controller-manager]}" \
  --leader-elect=false \
  --controllers=job-controller,ttl-after-finished-controller,garbage-collector-controller,pod-garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=false \
  --v=1
launch kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig="$kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="${port[scheduler]}" \
  --leader-elect=false \
  --v=1
cat "$TC_DIR"/stages/*.yaml >"$data/kwok-stages.yaml"
launch kwok "$bin/kwok" \
  --kubeconfig="$kubeconfig" \
  --config="$data/kwok-stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=10.244.0.0/16 \
  --node-ip=10.0.0.1

wait_for kube-controller-manager "kube-controller-manager /healthz" \
  curl -sfk "https://127.0.0.1:${port[controller-manager]}/healthz"
wait_for kube-scheduler "kube-scheduler /healthz" \
  curl -sfk "https://127.0.0.1:${port[scheduler]}/healthz"

# ---- fake nodes: t3.medium ----------------------------------------------------
# capacity as the instance (2 vCPU, 4 GiB); allocatable as EKS reports it
# for t3.medium: cpu 1930m, memory 3388Mi (~3.3 GiB), pods 17 (ENI limit).
current=kwok
nodes_yaml="$data/nodes.yaml"
: >"$nodes_yaml"
n=0
for zone in $zones; do
  for i in $(seq 1 "$per_zone"); do
    n=$((n + 1))
    cat >>"$nodes_yaml" <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: fake-${zone}-${i}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: fake-${zone}-${i}
    node.kubernetes.io/instance-type: t3.medium
    topology.kubernetes.io/region: ${zone%?}
    topology.kubernetes.io/zone: ${zone}
status:
  capacity:
    cpu: "2"
    memory: 4Gi
    pods: "17"
    ephemeral-storage: 20Gi
  allocatable:
    cpu: 1930m
    memory: 3388Mi
    pods: "17"
    ephemeral-storage: 18Gi
NODE
  done
done
kc apply -f "$nodes_yaml" >/dev/null || fail "step 'create nodes' failed"
nodes_ready() {
  [ "$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')" -eq "$n" ]
}
wait_for kwok "$n fake nodes Ready" nodes_ready

# ---- probe Job ------------------------------------------------------------------
current=kube-controller-manager
wait_for kube-controller-manager "default ServiceAccount" kc -n default get serviceaccount default
cat >"$data/probe-job.yaml" <<'JOB'
apiVersion: batch/v1
kind: Job
metadata:
  name: testcluster-probe
  namespace: default
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        cruncher.dev/run-seconds: "0"
    spec:
      restartPolicy: Never
      containers:
      - name: probe
        image: busybox
        command: ["true"]
JOB
kc create -f "$data/probe-job.yaml" >/dev/null || fail "step 'create probe Job' failed"
job_complete() {
  [ "$(kc -n default get job testcluster-probe -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}')" = True ]
}
wait_for kube-controller-manager "probe Job Complete" job_complete
kc -n default delete job testcluster-probe --cascade=foreground --wait=true --timeout=30s >/dev/null \
  || fail "step 'delete probe Job' failed"

trap - INT TERM
elapsed="$(python3 -c "import time; print(f'{time.time() - $t_start:.1f}')")"
echo "$elapsed" >"$data/start-seconds"
tc_log "cluster ready in ${elapsed}s: $server (data $data)"
tc_log "stop with: $TC_DIR/stop.sh $data"
echo "$kubeconfig"
