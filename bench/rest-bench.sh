#!/bin/bash
# rest-bench.sh - REST API throughput, latency and memory: pgwarden vs Patroni 3.0.2.
#
# Usage (as root): bench/rest-bench.sh [PGWARDEN_BINARY]
#   default binary: <repo>/build/release/pgwarden (built with `make` when missing)
#
# In one temp dir it starts one etcd, a one-node pgwarden cluster and a one-node Patroni
# cluster (Debian's /usr/bin/patroni, run as postgres, its own scope, data dir and ports,
# same etcd), waits until both answer 200 on GET /primary, then runs
#   wrk -t2 -c16 -d10s --latency http://127.0.0.1:PORT/{primary,patroni}
# against each and prints req/s, p50 and p99 side by side with the ratios, the daemons'
# VmRSS, and a final "target: ... MET|NOT MET" line.  Everything it starts is stopped and
# the temp dir removed on exit, also on failure or Ctrl-C.  Only 127.0.0.1 is used.
# Not a test: the exit code is 0 whenever the measurement ran, whatever the figures.
# Tunables (environment): BENCH_DURATION (10s), BENCH_THREADS (2), BENCH_CONNECTIONS (16).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/release/pgwarden}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
PATRONI_BIN=${PATRONI_BIN:-/usr/bin/patroni}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DURATION=${BENCH_DURATION:-10s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-16}
START_TIMEOUT=120          # seconds to wait for each cluster's /primary
PY=/usr/bin/python3        # Debian's python (Patroni's), not a pyenv shim on PATH
. "$ROOT/bench/lib.sh"


[ "$(id -u)" = 0 ] || die "run as root (pgwarden drops to postgres; Patroni is started as postgres)"
id postgres >/dev/null 2>&1 || die "no postgres user (install postgresql-15: scripts/install-deps.sh bench)"

# ---- dependencies --------------------------------------------------------------------------
if [ ! -x /usr/bin/wrk ] || [ ! -x "$PATRONI_BIN" ] || [ ! -x "$ETCD_BIN" ] || [ ! -x "$PG_BIN/initdb" ] \
   || ! $PY -c 'import etcd' 2>/dev/null; then
  say "installing missing packages (scripts/install-deps.sh bench)"
  "$ROOT/scripts/install-deps.sh" bench || die "install-deps.sh bench failed"
fi
if [ ! -x "$BIN" ]; then
  if [ $# -ge 1 ]; then die "$BIN: not an executable"; fi
  say "building $BIN (make in $ROOT)"
  make -C "$ROOT" >&2 || die "make failed"
  [ -x "$BIN" ] || die "$BIN still missing after make"
fi

# ---- temp dir and cleanup ------------------------------------------------------------------
# Only the new temp dir is chowned (never /tmp itself).
TMP=$(mktemp -d /tmp/pgw-bench.XXXXXX) || die "mktemp failed"
chmod 700 "$TMP"
chown postgres:postgres "$TMP"
ETCD_PIDF=$TMP/etcd.pid PGW_PIDF=$TMP/pgw.pid PAT_PIDF=$TMP/patroni.pid





CLEANED=0
cleanup() {
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap '' INT TERM
  stop_daemon "$(readpid "$PAT_PIDF")" 40 patroni   # stops its PostgreSQL itself
  stop_daemon "$(readpid "$PGW_PIDF")" 40 pgwarden
  stop_postmaster "$TMP/patroni/data"
  stop_postmaster "$TMP/pgw/data"
  stop_daemon "$(readpid "$ETCD_PIDF")" 10 etcd
  sweep "$TMP"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "keeping $TMP (BENCH_KEEP=1)"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# Free loopback ports: bind to port 0 and read what the kernel gave (all at once, so distinct).
read -r P_ETCD P_PEER P_PGW_PG P_PGW_API P_PAT_PG P_PAT_API < <($PY - <<'EOF'
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
)
[ -n "${P_PAT_API:-}" ] || die "could not find free ports"



wait_200() {   # URL TIMEOUT PIDFILE LOG WHAT
  local url=$1 t=$2 pidf=$3 log=$4 what=$5 start=$SECONDS
  while (( SECONDS - start < t )); do
    [ "$(http_status "$url")" = 200 ] && { say "$what: $url answers 200 after $((SECONDS - start))s"; return 0; }
    alive "$(readpid "$pidf")" || { say "$what exited; last log lines:"; tail -n 30 "$log" >&2; exit 1; }
    sleep 0.5
  done
  say "$what: $url not 200 after ${t}s; last log lines:"; tail -n 40 "$log" >&2
  exit 1
}

# ---- etcd ----------------------------------------------------------------------------------
mkdir -p "$TMP/etcd"
say "temp dir $TMP; etcd on 127.0.0.1:$P_ETCD"
start_bg "$ETCD_PIDF" "$TMP/etcd/etcd.log" "$TMP/etcd" "$ETCD_BIN" --name bench \
  --data-dir "$TMP/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$P_ETCD" --advertise-client-urls "http://127.0.0.1:$P_ETCD" \
  --listen-peer-urls "http://127.0.0.1:$P_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$P_PEER" \
  --initial-cluster "bench=http://127.0.0.1:$P_PEER" --initial-cluster-state new \
  --initial-cluster-token "pgw-bench-$$" --log-level warn
wait_200 "http://127.0.0.1:$P_ETCD/health" 30 "$ETCD_PIDF" "$TMP/etcd/etcd.log" etcd

# ---- the two clusters: same timings, same PostgreSQL parameters ----------------------------
SU_PW=bench-super-$$ REPL_PW=bench-repl-$$
write_cfg() {   # FILE SCOPE NAME DIR PG_PORT API_PORT EXTRA_TOP EXTRA_PG
  local f=$1 scope=$2 name=$3 dir=$4 pg=$5 api=$6
  cat > "$f" <<EOF
# written by bench/rest-bench.sh
scope: $scope
namespace: /service/
name: $name
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts:
    - 127.0.0.1:$P_ETCD
  protocol: http
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 40
        shared_buffers: 16MB
        max_wal_senders: 5
        max_replication_slots: 5
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
    - data-checksums
$7
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $dir/data
  bin_dir: $PG_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser:
      username: postgres
      password: $SU_PW
    replication:
      username: replicator
      password: $REPL_PW
  parameters:
    unix_socket_directories: $dir
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
$8
EOF
  chown postgres:postgres "$f"; chmod 600 "$f"
}

for d in pgw patroni; do install -d -o postgres -g postgres -m 700 "$TMP/$d"; done

# pgwarden: started as root, drops to postgres itself.
write_cfg "$TMP/pgw/pgwarden.yml" bench-pgwarden node1 "$TMP/pgw" "$P_PGW_PG" "$P_PGW_API" "user: postgres" ""
say "pgwarden $("$BIN" --version 2>&1 | head -n1): REST 127.0.0.1:$P_PGW_API, PostgreSQL $P_PGW_PG"
start_bg "$PGW_PIDF" "$TMP/pgw/pgwarden.log" "$TMP/pgw" "$BIN" "$TMP/pgw/pgwarden.yml"

# Patroni: run as postgres (setpriv execs, so the pid file holds the python process).
# Its log goes to stderr (captured); HOME points into the temp dir.
write_cfg "$TMP/patroni/patroni.yml" bench-patroni patroni1 "$TMP/patroni" "$P_PAT_PG" "$P_PAT_API" "" ""
say "$("$PATRONI_BIN" --version 2>&1 | head -n1): REST 127.0.0.1:$P_PAT_API, PostgreSQL $P_PAT_PG"
start_bg "$PAT_PIDF" "$TMP/patroni/patroni.log" "$TMP/patroni" \
  setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$TMP/patroni" USER=postgres \
  "$PATRONI_BIN" "$TMP/patroni/patroni.yml"

wait_200 "http://127.0.0.1:$P_PGW_API/primary" "$START_TIMEOUT" "$PGW_PIDF" "$TMP/pgw/pgwarden.log" pgwarden
wait_200 "http://127.0.0.1:$P_PAT_API/primary" "$START_TIMEOUT" "$PAT_PIDF" "$TMP/patroni/patroni.log" patroni
PGW_PID=$(readpid "$PGW_PIDF") PAT_PID=$(readpid "$PAT_PIDF")
sleep 1

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- wrk -----------------------------------------------------------------------------------
# to_ms VALUE-WITH-UNIT (wrk prints us, ms, s, m)
to_ms() { awk -v v="$1" 'BEGIN{ n=v+0; u=v; sub(/^[0-9.]+/, "", u);
  f = (u=="us")?0.001:(u=="ms")?1:(u=="s")?1000:(u=="m")?60000:(u=="h")?3600000:-1;
  if (f < 0) print "nan"; else printf "%.3f", n*f }'; }

declare -A RPS P50 P99 NOTE
run_wrk() {   # KEY PORT PATH
  local key=$1 url="http://127.0.0.1:$2$3" out
  say "wrk -t$THREADS -c$CONNS -d$DURATION --latency $url"
  out=$("${CLEAN_ENV[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url" 2>&1)
  printf '%s\n' "$out" > "$TMP/wrk-${key//\//-}.txt"
  RPS[$key]=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  P50[$key]=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
  P99[$key]=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
  NOTE[$key]=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | sed 's/^ *//' | paste -sd';' -)
  [ -n "${RPS[$key]}" ] || { say "wrk output unparsable:"; printf '%s\n' "$out" >&2; RPS[$key]=0; }
}
for path in /primary /patroni; do
  run_wrk "pgw$path" "$P_PGW_API" "$path"
  run_wrk "pat$path" "$P_PAT_API" "$path"
done

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
PGW_RSS=$(rss_kb "$PGW_PID") PAT_RSS=$(rss_kb "$PAT_PID")

# ---- report --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0) print "n/a"; else printf "%.2fx", a/b }'; }
echo
echo "REST API benchmark: wrk -t$THREADS -c$CONNS -d$DURATION --latency, one node each, same etcd, $(nproc) CPUs"
echo "pgwarden: $("$BIN" --version 2>&1 | head -n1)   Patroni: $("$PATRONI_BIN" --version 2>&1 | head -n1)   loadavg before: $LOAD_BEFORE (other load skews the figures)"
printf '%-22s %14s %14s %18s\n' "" pgwarden Patroni "pgwarden/Patroni"
MET=1
for path in /primary /patroni; do
  a=pgw$path b=pat$path
  printf '%-22s %14.1f %14.1f %18s\n' "GET $path req/s" "${RPS[$a]}" "${RPS[$b]}" "$(ratio "${RPS[$a]}" "${RPS[$b]}")"
  printf '%-22s %14s %14s %18s\n' "GET $path p50 ms" "${P50[$a]}" "${P50[$b]}" "$(ratio "${P50[$a]}" "${P50[$b]}")"
  printf '%-22s %14s %14s %18s\n' "GET $path p99 ms" "${P99[$a]}" "${P99[$b]}" "$(ratio "${P99[$a]}" "${P99[$b]}")"
  awk -v a="${RPS[$a]}" -v b="${RPS[$b]}" -v p="${P99[$a]}" \
    'BEGIN{ exit !(b > 0 && a >= 20*b && p != "nan" && p+0 < 5) }' || MET=0
done
printf '%-22s %14.1f %14.1f %18s\n' "daemon VmRSS MiB" "$(awk -v k="$PGW_RSS" 'BEGIN{print k/1024}')" \
  "$(awk -v k="$PAT_RSS" 'BEGIN{print k/1024}')" "$(ratio "$PGW_RSS" "$PAT_RSS")"
for k in pgw/primary pat/primary pgw/patroni pat/patroni; do
  [ -n "${NOTE[$k]}" ] && echo "note: $k: ${NOTE[$k]}"
done
echo "(VmRSS after the runs: pgwarden pid $PGW_PID vs the patroni python process pid $PAT_PID; PostgreSQL not counted)"
if [ "$MET" = 1 ]; then r=MET; else r="NOT MET"; fi
echo "target: pgwarden >= 20x Patroni req/s and p99 < 5 ms: $r"
