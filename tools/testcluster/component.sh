#!/usr/bin/env bash
# Stops, starts or restarts one component of a running test cluster, for
# tests of outages (an API server that goes away and comes back).
#
# Usage: component.sh DATA_DIR stop|kill|start|restart NAME
#   NAME: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
#   stop     TERM (KILL after TESTCLUSTER_STOP_TIMEOUT s, default 10), then
#            waits until the process is gone and its port no longer listens.
#   kill     the same with KILL at once: a crash, no graceful shutdown.
#   start    relaunches the exact command line start.sh recorded in
#            DATA_DIR/cmd/NAME (same ports, same data, output appended to
#            DATA_DIR/logs/NAME.log), records the new pid in DATA_DIR/pids
#            and waits until the component is ready (as start.sh does), at
#            most TESTCLUSTER_READY_TIMEOUT s (default 60).
#   restart  stop, then start.
# stop.sh stops a restarted component like any other.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

[ "$#" -eq 3 ] || tc_die "usage: component.sh DATA_DIR stop|kill|start|restart NAME"
data="$1" action="$2" name="$3"
[ -f "$data/pids" ] || tc_die "$data/pids does not exist: no cluster there"
[ -f "$data/cmd/$name" ] ||
  tc_die "no recorded command for '$name' in $data/cmd (started by an older start.sh?)"
stop_timeout="${TESTCLUSTER_STOP_TIMEOUT:-10}"
ready_timeout="${TESTCLUSTER_READY_TIMEOUT:-60}"

alive() { # running and not a zombie
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
ours() { # still one of the cache's binaries (pids can be reused)
  local exe
  exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 1
  case "$exe" in */testcluster/*/bin/*) return 0 ;; *) return 1 ;; esac
}
pid_of() { awk -v n="$name" '$1 == n {print $2}' "$data/pids"; }
port_of() { awk -F= -v n="$1" '$1 == n {print $2}' "$data/ports"; }
# Replaces NAME's pid in DATA_DIR/pids, keeping its place (stop.sh stops in
# reverse start order); "-" marks a stopped component.
set_pid() {
  local tmp="$data/pids.tmp.$$"
  awk -v n="$name" -v p="$1" '$1 == n {print n, p; next} {print}' \
    "$data/pids" >"$tmp"
  mv "$tmp" "$data/pids"
}
listening() { ss -Hltn "sport = :$1" | grep -q .; }
# The port whose listener tells that NAME is gone.
main_port() {
  case "$name" in
    etcd) port_of etcd-client ;;
    kube-apiserver) port_of apiserver ;;
    kube-controller-manager) port_of controller-manager ;;
    kube-scheduler) port_of scheduler ;;
    *) echo "" ;;
  esac
}
ready() {
  local p
  case "$name" in
    etcd) curl -sf "http://127.0.0.1:$(port_of etcd-client)/health" ;;
    kube-apiserver)
      p="$(port_of apiserver)"
      curl -sf --cacert "$data/pki/ca.crt" \
        -H "Authorization: Bearer $(cut -d, -f1 "$data/pki/tokens.csv")" \
        "https://127.0.0.1:$p/readyz"
      ;;
    kube-controller-manager)
      curl -sfk "https://127.0.0.1:$(port_of controller-manager)/healthz" ;;
    kube-scheduler) curl -sfk "https://127.0.0.1:$(port_of scheduler)/healthz" ;;
    *) true ;;
  esac
}

# do_stop SIGNAL
do_stop() {
  local pid port deadline
  pid="$(pid_of)"
  if [ -n "$pid" ] && [ "$pid" != - ] && alive "$pid" && ours "$pid"; then
    kill "-$1" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + stop_timeout))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid" && ours "$pid"; then
      tc_log "$name ($pid) still running after ${stop_timeout}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    fi
    alive "$pid" && tc_die "$name ($pid) survived KILL"
    tc_log "stopped $name ($pid) with $1"
  else
    tc_log "$name was not running"
  fi
  set_pid -
  port="$(main_port)"
  if [ -n "$port" ]; then
    for _ in $(seq 100); do listening "$port" || break; sleep 0.1; done
    listening "$port" && tc_die "port $port ($name) still listening"
  fi
  return 0
}

do_start() {
  local pid deadline
  pid="$(pid_of)"
  if [ -n "$pid" ] && [ "$pid" != - ] && alive "$pid" && ours "$pid"; then
    tc_die "$name is already running (pid $pid)"
  fi
  local -a cmd
  eval "cmd=($(cat "$data/cmd/$name"))"
  # The caller's descriptors (a test runner's pipes) must not be held open
  # by a server that outlives this script.
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ]; then eval "exec $fd>&-"; fi
    done
    exec "${cmd[@]}"
  ) </dev/null >>"$data/logs/$name.log" 2>&1 &
  pid=$!
  set_pid "$pid"
  tc_log "started $name (pid $pid)"
  deadline=$((SECONDS + ready_timeout))
  until ready >/dev/null 2>&1; do
    alive "$pid" || tc_die "$name exited while starting (see $data/logs/$name.log)"
    [ "$SECONDS" -lt "$deadline" ] ||
      tc_die "timed out after ${ready_timeout}s waiting for $name to be ready"
    sleep 0.2
  done
  tc_log "$name ready"
}

case "$action" in
  stop) do_stop TERM ;;
  kill) do_stop KILL ;;
  start) do_start ;;
  restart) do_stop TERM && do_start ;;
  *) tc_die "unknown action '$action' (stop, kill, start or restart)" ;;
esac
