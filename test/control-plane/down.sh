#!/usr/bin/env bash
# Stops the control plane started by up.sh (pid files in $FT_CLUSTER_DIR/run) and
# removes its state dir.
# Env:
#   FT_CLUSTER_DIR   state dir (default /tmp/finetune-cluster)
#   FT_KEEP_STATE    1 = stop the processes but keep the dir (logs, certs, etcd data)
#   FT_QUIET         1 = print nothing but errors
set -uo pipefail

DIR="${FT_CLUSTER_DIR:-/tmp/finetune-cluster}"
MARKER=".finetune-control-plane"
say() { [ "${FT_QUIET:-0}" = 1 ] || printf '[down.sh] %s\n' "$*" >&2; }

if [ ! -d "$DIR" ]; then
  say "nothing to do: $DIR does not exist"
  exit 0
fi
if [ ! -f "$DIR/$MARKER" ]; then
  printf '[down.sh] ERROR: %s is not a control-plane dir (no %s); not touching it\n' "$DIR" "$MARKER" >&2
  exit 1
fi

# State that is thrown away needs no graceful shutdown (which takes ~5 s: apiserver
# draining, etcd closing): SIGKILL then. With FT_KEEP_STATE=1: SIGTERM, SIGKILL after 10 s.
if [ "${FT_KEEP_STATE:-0}" = 1 ]; then SIG=TERM; else SIG=KILL; fi

# Stop in reverse start order. A pid is only signalled if its command line still names
# the expected binary, so a recycled pid never gets killed.
stop() { # <name> <pattern in cmdline>
  local name="$1" pat="$2" pidf="$DIR/run/$1.pid" pid
  pid=$(cat "$pidf" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  if [ "${FT_WATCHDOG:-0}" = 1 ] && [ "$name" = watchdog ]; then return 0; fi
  # Running and not a zombie (a killed child of init can stay <defunct> for a while).
  running() { local st; st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || return 1; [ -n "$st" ] && [ "${st%% *}" != Z ]; }
  matches() { tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pat"; }
  if running && matches; then
    kill "-$SIG" "$pid" 2>/dev/null
    for _ in $(seq 1 100); do running || break; sleep 0.1; done
    if running && matches; then
      say "$name ($pid) did not stop on SIG$SIG; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    say "stopped $name ($pid)"
  fi
  rm -f "$pidf"
}
stop watchdog watchdog
stop kube-controller-manager kube-controller-manager
stop kube-scheduler kube-scheduler
stop kube-apiserver kube-apiserver
stop etcd etcd

if [ "${FT_KEEP_STATE:-0}" = 1 ]; then
  say "processes stopped; state kept in $DIR"
else
  rm -rf "$DIR"
  say "removed $DIR"
fi
