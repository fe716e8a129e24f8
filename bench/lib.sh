#!/bin/bash
# lib.sh - what the benchmarks share (sourced): messages, process control, cleanup.
# Needs PY (a python3) for http_status.

# Daemons run without proxy variables (only 127.0.0.1 is ever contacted).
CLEAN_ENV=(env -u http_proxy -u https_proxy -u all_proxy -u HTTP_PROXY -u HTTPS_PROXY
           -u ALL_PROXY -u ftp_proxy -u FTP_PROXY no_proxy='*' NO_PROXY='*' LANG=C.UTF-8)

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

die() { say "ERROR: $*"; exit 1; }

readpid() { [ -s "$1" ] && cat "$1" 2>/dev/null; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && \
          [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# SIGTERM a daemon, wait up to $2 s, then SIGKILL its whole process group (setsid: pgid == pid).
stop_daemon() {
  local pid=$1 t=$2 what=$3 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < t * 10; i++)); do alive "$pid" || return 0; sleep 0.1; done
  say "$what (pid $pid) still running after ${t}s: SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
}

# A PostgreSQL left behind: immediate shutdown of the postmaster named in postmaster.pid.
stop_postmaster() {
  local dd=$1 pm i
  pm=$(head -n1 "$dd/postmaster.pid" 2>/dev/null) || return 0
  alive "$pm" || return 0
  say "postmaster $pm of $dd still running: SIGQUIT"
  kill -QUIT "$pm" 2>/dev/null
  for ((i = 0; i < 100; i++)); do alive "$pm" || return 0; sleep 0.1; done
  kill -KILL "$pm" 2>/dev/null
}

# Last resort: every process whose working directory is inside $1 (PostgreSQL backends run
# in their data dir; the daemons and etcd were started with cwd in $TMP).
sweep() {
  local dir=$1 p cwd left=""
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$cwd" in "$dir"|"$dir"/*) left="$left ${p#/proc/}" ;; esac
  done
  [ -z "$left" ] && return 0
  say "killing leftover processes in $dir:$left"
  kill -KILL $left 2>/dev/null
  sleep 0.3
}

# start_bg PIDFILE LOG CWD CMD...: run CMD in its own session, its pid written to PIDFILE.
start_bg() {
  local pidf=$1 log=$2 cwd=$3; shift 3
  local what=$1
  (cd "$cwd" && exec setsid "${CLEAN_ENV[@]}" sh -c 'echo $$ > "$0"; exec "$@"' "$pidf" "$@" \
     </dev/null >>"$log" 2>&1) &
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$pidf" ] && return 0; sleep 0.1; done
  die "could not start $what (see $log)"
}

# HTTP status code of a GET (0 when nothing answers); no proxy.
http_status() {
  $PY - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request, urllib.error
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    print(op.open(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
EOF
}
