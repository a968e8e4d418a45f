#!/usr/bin/env bash
# Stops what start.sh started in DATA_DIR: each recorded pid gets TERM (in
# reverse start order), then KILL after TESTCLUSTER_STOP_TIMEOUT seconds
# (default 10). Verifies that no pid survives and that no recorded port is
# still listening, then removes DATA_DIR unless KEEP is set (non-empty, not 0).
# Usage: stop.sh [DATA_DIR]   (or TESTCLUSTER_DIR=...)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

data="${1:-${TESTCLUSTER_DIR:-}}"
[ -n "$data" ] || tc_die "usage: stop.sh DATA_DIR (or TESTCLUSTER_DIR)"
[ -d "$data" ] || { tc_log "nothing to stop: $data does not exist"; exit 0; }
timeout_s="${TESTCLUSTER_STOP_TIMEOUT:-10}"

alive() { # running and not a zombie
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
# Only signal a pid that still runs one of our binaries (pids can be reused).
ours() {
  local exe
  exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 1
  case "$exe" in
    */testcluster/*/bin/*) return 0 ;;
    *) return 1 ;;
  esac
}

rc=0
if [ -f "$data/pids" ]; then
  mapfile -t entries < <(tac "$data/pids")
  for e in "${entries[@]}"; do
    name="${e%% *}" pid="${e##* }"
    [ -n "$pid" ] || continue
    if alive "$pid" && ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      tc_log "sent TERM to $name ($pid)"
    fi
  done
  deadline=$((SECONDS + timeout_s))
  for e in "${entries[@]}"; do
    name="${e%% *}" pid="${e##* }"
    [ -n "$pid" ] || continue
    while alive "$pid" && ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid" && ours "$pid"; then
      tc_log "$name ($pid) still running after ${timeout_s}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    fi
    if alive "$pid" && ours "$pid"; then
      tc_log "ERROR: $name ($pid) survived KILL"; rc=1
    fi
  done
  # Dead children of an exited start.sh belong to init; give it a moment to
  # reap them so no zombie lingers in the process table (best effort).
  for e in "${entries[@]}"; do
    pid="${e##* }"
    for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  done
  : >"$data/pids"
fi

if [ -f "$data/ports" ]; then
  while IFS='=' read -r name port; do
    [ -n "$port" ] || continue
    for _ in $(seq 50); do
      ss -Hltn "sport = :$port" | grep -q . || break
      sleep 0.1
    done
    if ss -Hltn "sport = :$port" | grep -q .; then
      tc_log "ERROR: port $port ($name) still listening"; rc=1
    fi
  done <"$data/ports"
fi

if [ "$rc" = 0 ]; then
  tc_log "stopped: no process left, no port listening"
fi
if [ -n "${KEEP:-}" ] && [ "${KEEP}" != 0 ]; then
  tc_log "KEEP set: data kept in $data"
else
  rm -rf "$data"
  tc_log "removed $data"
fi
exit "$rc"
