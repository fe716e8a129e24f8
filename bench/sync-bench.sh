#!/bin/bash
# sync-bench.sh - commit throughput and latency with synchronous_mode off and on:
# pgwarden vs Patroni 3.0.2.
#
# Usage (as root): bench/sync-bench.sh [PGWARDEN_BINARY]
#   default binary: <repo>/build/release/pgwarden (built with `make` when missing)
#
# In one temp dir it starts one etcd, then, one cluster at a time, a 2-node cluster (primary +
# streaming replica, both on loopback) for each of: pgwarden async, Patroni async, pgwarden
# sync, Patroni sync (Debian's /usr/bin/patroni, run as postgres).  All four have the same
# timings (ttl 10, loop_wait 2, retry_timeout 3) and PostgreSQL parameters; only the manager
# and bootstrap.dcs.synchronous_mode differ.  For each it waits until the cluster is healthy
# (primary answers 200 on GET /primary, replica streaming; in sync mode also GET /sync 200 on
# the replica, the etcd sync key naming it, synchronous_standby_names set and
# pg_stat_replication.sync_state = sync), runs `pgbench -i -s 10`, a CHECKPOINT, waits for the
# replica to replay everything, then
#   pgbench -b simple-update -c 8 -j 2 -T 30 --log
# against the primary, stops the cluster and removes its data.  It prints tps, latency
# (average, stddev, p50, p99 from the per-transaction log) per row, the ratios pgwarden/Patroni
# per mode and a final "sync cost: ..." line.  Before the two managers, in each mode, it measures
# a bare PostgreSQL pair (pg_ctl, synchronous_standby_names set by hand) as the reference for
# PostgreSQL's own cost (BENCH_SYNC_BARE=0 leaves it out).  Everything it starts is stopped and
# the temp dir removed on exit, also on failure or Ctrl-C.  Only 127.0.0.1 is used.
# Not a test: the exit code is 0 whenever the measurement ran, whatever the figures.
# Tunables (environment): BENCH_SYNC_DURATION (30, seconds), BENCH_SYNC_BARE (1),
# BENCH_KEEP (0: 1 keeps the temp dir with the logs and the pgbench outputs).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/release/pgwarden}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-/usr/bin/etcdctl}
PATRONI_BIN=${PATRONI_BIN:-/usr/bin/patroni}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DURATION=${BENCH_SYNC_DURATION:-30}
BARE=${BENCH_SYNC_BARE:-1}
CLIENTS=8 JOBS=2 SCALE=10
START_TIMEOUT=120          # seconds to wait for each step of a cluster's start
PY=/usr/bin/python3        # Debian's python (Patroni's), not a pyenv shim on PATH
. "$ROOT/bench/lib.sh"


[ "$(id -u)" = 0 ] || die "run as root (pgwarden drops to postgres; Patroni is started as postgres)"
case "$DURATION" in ''|*[!0-9]*|0) die "BENCH_SYNC_DURATION must be a positive number of seconds" ;; esac

# ---- dependencies --------------------------------------------------------------------------
if [ ! -x "$PATRONI_BIN" ] || [ ! -x "$ETCD_BIN" ] || [ ! -x "$ETCDCTL_BIN" ] \
   || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pgbench" ] || [ ! -x "$PG_BIN/psql" ] \
   || ! id postgres >/dev/null 2>&1 || ! $PY -c 'import etcd' 2>/dev/null; then
  say "installing missing packages (scripts/install-deps.sh bench)"
  "$ROOT/scripts/install-deps.sh" bench || die "install-deps.sh bench failed"
fi
id postgres >/dev/null 2>&1 || die "no postgres user (install postgresql-15: scripts/install-deps.sh bench)"
if [ ! -x "$BIN" ]; then
  if [ $# -ge 1 ]; then die "$BIN: not an executable"; fi
  say "building $BIN (make in $ROOT)"
  make -C "$ROOT" >&2 || die "make failed"
  [ -x "$BIN" ] || die "$BIN still missing after make"
fi

# ---- temp dir and cleanup ------------------------------------------------------------------
# Only the new temp dir is chowned (never /tmp itself).
TMP=$(mktemp -d /tmp/pgw-syncbench.XXXXXX) || die "mktemp failed"
chmod 700 "$TMP"
chown postgres:postgres "$TMP"
ETCD_PIDF=$TMP/etcd.pid
T0=$SECONDS





# Stop one cluster (a run dir holding node1/ and node2/): the replica first, so that nobody
# reacts to a vanished primary; each daemon stops its PostgreSQL (Patroni and pgwarden both do
# on SIGTERM); the bare pair is stopped with pg_ctl; leftovers by postmaster.pid and by cwd.
teardown_run() {
  local run=$1 n
  [ -d "$run" ] || return 0
  for n in node2 node1; do
    if [ -s "$run/$n/daemon.pid" ]; then
      stop_daemon "$(readpid "$run/$n/daemon.pid")" 40 "$(basename "$run")/$n"
    elif [ -s "$run/$n/data/postmaster.pid" ]; then
      setpriv --reuid=postgres --regid=postgres --init-groups "$PG_BIN/pg_ctl" -D "$run/$n/data" \
        -m fast -w -t 30 stop >>"$run/$n/pg.log" 2>&1
    fi
  done
  for n in node2 node1; do stop_postmaster "$run/$n/data"; done
  sweep "$run"
}

CLEANED=0
cleanup() {
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap '' INT TERM
  local run
  for run in "$TMP"/run-*; do teardown_run "$run"; done
  stop_daemon "$(readpid "$ETCD_PIDF")" 10 etcd
  sweep "$TMP"
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "keeping $TMP (BENCH_KEEP=1)"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# Free loopback ports: bind to port 0 and read what the kernel gave (all at once, so distinct).
# 2 for etcd, then per run 2 PostgreSQL + 2 REST ports (5 runs at most).
read -r -a PORTS < <($PY - <<'EOF'
import socket
ss = [socket.socket() for _ in range(22)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
)
[ "${#PORTS[@]}" = 22 ] || die "could not find free ports"
P_ETCD=${PORTS[0]} P_PEER=${PORTS[1]}
NEXT_PORT=2
take_port() { REPLY=${PORTS[$NEXT_PORT]}; NEXT_PORT=$((NEXT_PORT + 1)); }

AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)


SU_PW=bench-super-$$ REPL_PW=bench-repl-$$
# psql PORT SQL: one statement as the superuser over TCP, unaligned tuples only.
pgq() {
  "${CLEAN_ENV[@]}" PGPASSWORD="$SU_PW" PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -h 127.0.0.1 -p "$1" \
    -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$2" 2>/dev/null
}

# wait_for TIMEOUT WHAT CHECK-FUNCTION: poll CHECK until it succeeds; while waiting, give up
# early when a daemon of the current run died (CUR_PIDFS, CUR_LOGS).
wait_for() {
  local t=$1 what=$2 check=$3 start=$SECONDS i
  while (( SECONDS - start < t )); do
    if "$check"; then say "$what after $((SECONDS - start))s"; return 0; fi
    for i in "${!CUR_PIDFS[@]}"; do
      [ -e "${CUR_PIDFS[$i]}" ] || continue
      alive "$(readpid "${CUR_PIDFS[$i]}")" && continue
      say "waiting for $what: $(dirname "${CUR_PIDFS[$i]}") exited; last log lines:"
      tail -n 30 "${CUR_LOGS[$i]}" >&2; exit 1
    done
    sleep 0.5
  done
  say "no $what after ${t}s; last log lines:"
  for i in "${!CUR_LOGS[@]}"; do
    [ -e "${CUR_LOGS[$i]}" ] && { echo "--- ${CUR_LOGS[$i]}" >&2; tail -n 25 "${CUR_LOGS[$i]}" >&2; }
  done
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
  --initial-cluster-token "pgw-syncbench-$$" --log-level warn
CUR_PIDFS=("$ETCD_PIDF") CUR_LOGS=("$TMP/etcd/etcd.log")
etcd_ok() { [ "$(http_status "http://127.0.0.1:$P_ETCD/health")" = 200 ]; }
wait_for 30 "etcd healthy" etcd_ok

# ---- the clusters: same timings, same PostgreSQL parameters --------------------------------
# Everything that shapes the cost of a commit is set here, the same for every row (and for
# the bare pair); the settings the primaries really run with are compared in the report.
PG_PARAMS="max_connections: 40
shared_buffers: 128MB
max_wal_senders: 5
max_replication_slots: 5
wal_keep_size: 128MB
max_wal_size: 2GB
checkpoint_timeout: 15min
synchronous_commit: \"on\"
wal_log_hints: \"on\"
hot_standby: \"on\""
COMPARED="synchronous_commit fsync wal_sync_method full_page_writes wal_level wal_log_hints
data_checksums shared_buffers max_wal_size checkpoint_timeout max_connections commit_delay
wal_compression wal_writer_delay wal_buffers hot_standby_feedback"
indent() { sed "s/^/$1/"; }

write_cfg() {   # FILE SCOPE NAME DIR PG_PORT API_PORT SYNC(true|false) EXTRA_TOP
  local f=$1 scope=$2 name=$3 dir=$4 pg=$5 api=$6 sync=$7
  cat > "$f" <<EOF
# written by bench/sync-bench.sh
scope: $scope
namespace: /service/
name: $name
$8
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts:
    - 127.0.0.1:$P_ETCD
  protocol: http
watchdog:
  mode: "off"
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    synchronous_mode: $sync
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
$(indent '        ' <<<"$PG_PARAMS")
  initdb:
    - encoding: UTF8
    - data-checksums
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
EOF
  chown postgres:postgres "$f"; chmod 600 "$f"
}

# Health checks of the current run (R_* set by start_cluster / start_bare).
primary_up() {
  if [ "$R_MGR" = bare ]; then [ "$(pgq "$R_PG1" 'SELECT NOT pg_is_in_recovery()')" = t ]
  else [ "$(http_status "http://127.0.0.1:$R_API1/primary")" = 200 ]; fi
}
replica_streaming() {
  if [ "$R_MGR" != bare ]; then
    [ "$(http_status "http://127.0.0.1:$R_API2/replica")" = 200 ] || return 1
  fi
  [ "$(pgq "$R_PG1" "SELECT count(*) FROM pg_stat_replication
         WHERE application_name = '$R_NAME2' AND state = 'streaming'")" = 1 ]
}
sync_ready() {
  [ -n "$(pgq "$R_PG1" 'SHOW synchronous_standby_names')" ] || return 1
  [ "$(pgq "$R_PG1" "SELECT sync_state FROM pg_stat_replication
         WHERE application_name = '$R_NAME2'")" = sync ] || return 1
  [ "$R_MGR" = bare ] && return 0
  [ "$(http_status "http://127.0.0.1:$R_API2/sync")" = 200 ] || return 1
  "${CLEAN_ENV[@]}" ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="http://127.0.0.1:$P_ETCD" \
    get --print-value-only "/service/$R_SCOPE/sync" 2>/dev/null | grep -q "\"$R_NAME2\""
}
replica_caught_up() {
  [ "$(pgq "$R_PG1" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) <= 0
         FROM pg_stat_replication WHERE application_name = '$R_NAME2'")" = t ]
}

# start_cluster MGR(pgw|pat) MODE(async|sync): a 2-node cluster, node1 first (it bootstraps
# and leads), then node2 (it clones node1 with pg_basebackup).
start_cluster() {
  local mgr=$1 mode=$2 n name dir api pg sync=false
  [ "$mode" = sync ] && sync=true
  R_MGR=$mgr R_RUN=$TMP/run-$mgr-$mode R_SCOPE=bench-$mgr-$mode
  install -d -o postgres -g postgres -m 700 "$R_RUN"
  CUR_PIDFS=("$ETCD_PIDF") CUR_LOGS=("$TMP/etcd/etcd.log")
  for n in 1 2; do
    if [ "$mgr" = pgw ]; then name=node$n; else name=patroni$n; fi
    dir=$R_RUN/node$n
    install -d -o postgres -g postgres -m 700 "$dir"
    take_port; pg=$REPLY; take_port; api=$REPLY
    eval "R_PG$n=$pg R_API$n=$api R_NAME$n=$name"
    if [ "$mgr" = pgw ]; then
      # pgwarden: started as root, drops to postgres itself.
      write_cfg "$dir/config.yml" "$R_SCOPE" "$name" "$dir" "$pg" "$api" "$sync" "user: postgres"
      start_bg "$dir/daemon.pid" "$dir/daemon.log" "$dir" "$BIN" "$dir/config.yml"
    else
      # Patroni: run as postgres (setpriv execs, so the pid file holds the python process).
      write_cfg "$dir/config.yml" "$R_SCOPE" "$name" "$dir" "$pg" "$api" "$sync" ""
      start_bg "$dir/daemon.pid" "$dir/daemon.log" "$dir" "${AS_PG[@]}" \
        env HOME="$dir" USER=postgres "$PATRONI_BIN" "$dir/config.yml"
    fi
    CUR_PIDFS+=("$dir/daemon.pid") CUR_LOGS+=("$dir/daemon.log")
    say "$R_SCOPE: $name started (REST 127.0.0.1:$api, PostgreSQL $pg)"
    if [ "$n" = 1 ]; then wait_for "$START_TIMEOUT" "$R_SCOPE: $name leads (/primary 200)" primary_up; fi
  done
}

# start_bare MODE: the reference, no manager: initdb + pg_ctl for the primary, pg_basebackup
# -R for the replica, synchronous_standby_names set by hand in sync mode.
start_bare() {
  local mode=$1 d1 d2 conf
  R_MGR=bare R_RUN=$TMP/run-bare-$mode R_SCOPE=bare-$mode R_NAME2=bare2
  install -d -o postgres -g postgres -m 700 "$R_RUN" "$R_RUN/node1" "$R_RUN/node2"
  take_port; R_PG1=$REPLY; take_port; R_PG2=$REPLY
  CUR_PIDFS=("$ETCD_PIDF") CUR_LOGS=("$TMP/etcd/etcd.log" "$R_RUN/node1/pg.log" "$R_RUN/node2/pg.log")
  d1=$R_RUN/node1/data d2=$R_RUN/node2/data
  printf '%s\n' "$SU_PW" > "$R_RUN/pw"; chown postgres "$R_RUN/pw"; chmod 600 "$R_RUN/pw"
  (cd "$R_RUN" && "${CLEAN_ENV[@]}" "${AS_PG[@]}" "$PG_BIN/initdb" -D "$d1" -U postgres \
     --pwfile="$R_RUN/pw" -E UTF8 --data-checksums --auth-local=trust --auth-host=scram-sha-256 \
     >"$R_RUN/node1/initdb.log" 2>&1) || { tail "$R_RUN/node1/initdb.log" >&2; die "initdb failed"; }
  {
    echo "# written by bench/sync-bench.sh"
    sed -e 's/"//g' -e "s/^\\([a-z_]*\\): \\(.*\\)\$/\\1 = '\\2'/" <<<"$PG_PARAMS"
    echo "wal_level = replica"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$R_RUN/node1'"
  } >> "$d1/postgresql.conf"
  echo "host replication replicator 127.0.0.1/32 scram-sha-256" >> "$d1/pg_hba.conf"
  (cd "$R_RUN" && "${CLEAN_ENV[@]}" "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$d1" -o "-p $R_PG1" \
     -l "$R_RUN/node1/pg.log" -w -t 60 start >/dev/null) || die "bare primary did not start (see $R_RUN/node1/pg.log)"
  pgq "$R_PG1" "CREATE ROLE replicator REPLICATION LOGIN PASSWORD '$REPL_PW'" >/dev/null \
    || die "bare: CREATE ROLE replicator failed"
  (cd "$R_RUN" && "${CLEAN_ENV[@]}" PGPASSWORD="$REPL_PW" "${AS_PG[@]}" "$PG_BIN/pg_basebackup" \
     -h 127.0.0.1 -p "$R_PG1" -U replicator -D "$d2" -R -X stream -c fast \
     -d "application_name=$R_NAME2" >"$R_RUN/node2/basebackup.log" 2>&1) \
     || { tail "$R_RUN/node2/basebackup.log" >&2; die "bare: pg_basebackup failed"; }
  conf="unix_socket_directories = '$R_RUN/node2'"
  echo "$conf" >> "$d2/postgresql.conf"
  (cd "$R_RUN" && "${CLEAN_ENV[@]}" "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$d2" -o "-p $R_PG2" \
     -l "$R_RUN/node2/pg.log" -w -t 60 start >/dev/null) || die "bare replica did not start (see $R_RUN/node2/pg.log)"
  if [ "$mode" = sync ]; then
    pgq "$R_PG1" "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (\"$R_NAME2\")'" >/dev/null &&
      pgq "$R_PG1" "SELECT pg_reload_conf()" >/dev/null || die "bare: could not set synchronous_standby_names"
  fi
}

declare -A TPS LAT STD P50 P99 XACTS FAILED MGRCPU SETTINGS INIT_S SSN
HZ=$(getconf CLK_TCK)
# CPU ticks (user + system, all threads) the current run's manager daemons have used so far.
mgr_ticks() {
  local n pid sum=0 t
  for n in node1 node2; do
    pid=$(readpid "$R_RUN/$n/daemon.pid") || continue
    t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
declare -A LABEL=([bare]="bare PG" [pgw]="pgwarden" [pat]="Patroni")

# measure MGR MODE: start, wait healthy, init, run, tear down.
measure() {
  local mgr=$1 mode=$2 key=$1-$2 out t start
  say "==== $mgr $mode"
  if [ "$mgr" = bare ]; then start_bare "$mode"; else start_cluster "$mgr" "$mode"; fi
  wait_for "$START_TIMEOUT" "$R_SCOPE: primary answers" primary_up
  wait_for "$START_TIMEOUT" "$R_SCOPE: $R_NAME2 streaming" replica_streaming
  if [ "$mode" = sync ]; then
    wait_for "$START_TIMEOUT" "$R_SCOPE: $R_NAME2 synchronous" sync_ready
  fi
  SSN[$key]=$(pgq "$R_PG1" 'SHOW synchronous_standby_names')
  if [ "$mode" = async ] && [ -n "${SSN[$key]}" ]; then
    say "WARNING: $R_SCOPE: synchronous_standby_names = '${SSN[$key]}' in async mode"
  fi

  local PGB=("${CLEAN_ENV[@]}" PGPASSWORD="$SU_PW" "$PG_BIN/pgbench" -h 127.0.0.1 -p "$R_PG1" -U postgres)
  start=$SECONDS
  say "$R_SCOPE: pgbench -i -s $SCALE"
  (cd "$R_RUN" && "${PGB[@]}" -i -s "$SCALE" -q postgres >"$R_RUN/pgbench-init.txt" 2>&1) \
    || { tail -n 20 "$R_RUN/pgbench-init.txt" >&2; die "$R_SCOPE: pgbench -i failed"; }
  pgq "$R_PG1" CHECKPOINT >/dev/null || say "WARNING: $R_SCOPE: CHECKPOINT failed"
  INIT_S[$key]=$((SECONDS - start))
  say "$R_SCOPE: pgbench -i and CHECKPOINT took ${INIT_S[$key]}s"
  wait_for "$START_TIMEOUT" "$R_SCOPE: $R_NAME2 replayed everything" replica_caught_up
  # the effective settings of the primary, compared between the rows in the report
  SETTINGS[$key]=$(pgq "$R_PG1" "SELECT string_agg(name || '=' || current_setting(name),
      ' ' ORDER BY name) FROM pg_settings
      WHERE name IN ($(printf "'%s'," $COMPARED | sed 's/,$//'))")
  if [ "$mode" = sync ]; then sync_ready || say "WARNING: $R_SCOPE: no longer synchronous before the run"; fi

  sleep 1
  say "$R_SCOPE: pgbench -b simple-update -c $CLIENTS -j $JOBS -T $DURATION (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  local ticks0
  ticks0=$(mgr_ticks)
  mkdir -p "$R_RUN/txlog"
  out=$(cd "$R_RUN" && "${PGB[@]}" -b simple-update -c "$CLIENTS" -j "$JOBS" -T "$DURATION" \
        --log --log-prefix="$R_RUN/txlog/tx" postgres 2>&1)
  printf '%s\n' "$out" > "$R_RUN/pgbench-run.txt"
  if [ "$mgr" = bare ]; then MGRCPU[$key]=-
  else MGRCPU[$key]=$(awk -v t="$(( $(mgr_ticks) - ticks0 ))" -v hz="$HZ" 'BEGIN{printf "%.2f", t / hz}'); fi
  TPS[$key]=$(awk '/^tps = /{print $3; exit}' <<<"$out")
  LAT[$key]=$(awk '/^latency average = /{print $4; exit}' <<<"$out")
  XACTS[$key]=$(awk -F': ' '/^number of transactions actually processed/{split($2, a, "/"); print a[1]; exit}' <<<"$out")
  FAILED[$key]=$(awk -F': ' '/^number of failed transactions/{split($2, a, " "); print a[1]; exit}' <<<"$out")
  if [ -z "${TPS[$key]}" ]; then
    say "$R_SCOPE: pgbench output unparsable:"; printf '%s\n' "$out" >&2
    TPS[$key]=0 LAT[$key]=nan
  fi
  # stddev, p50, p99 from the per-transaction log (3rd field: latency in microseconds)
  local sd p50 p99
  read -r sd p50 p99 < <(cat "$R_RUN"/txlog/tx.* 2>/dev/null | awk '{print $3}' | sort -n |
    awk '{ v[NR] = $1; s += $1; ss += $1 * $1 }
         END { if (NR == 0) { print "nan nan nan"; exit }
               m = s / NR; sd = ss / NR - m * m; if (sd < 0) sd = 0
               i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
               printf "%.3f %.3f %.3f\n", sqrt(sd) / 1000, v[i50] / 1000, v[i99] / 1000 }')
  STD[$key]=$sd P50[$key]=$p50 P99[$key]=$p99
  rm -rf "$R_RUN/txlog"
  say "$R_SCOPE: tps ${TPS[$key]}, latency avg ${LAT[$key]} ms, p99 ${P99[$key]} ms"

  say "$R_SCOPE: stopping"
  teardown_run "$R_RUN"
  CUR_PIDFS=("$ETCD_PIDF") CUR_LOGS=("$TMP/etcd/etcd.log")
  rm -rf "$R_RUN/node1/data" "$R_RUN/node2/data"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
for mode in async sync; do
  if [ "$BARE" = 1 ]; then measure bare "$mode"; ROWS+=("bare-$mode"); fi
  measure pgw "$mode"; ROWS+=("pgw-$mode")
  measure pat "$mode"; ROWS+=("pat-$mode")
done

# ---- report --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%.2fx", a/b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%+.1f%%", (a/b - 1) * 100 }'; }
PGVER=$("$PG_BIN/postgres" --version | awk '{print $3}')
echo
echo "Commit benchmark: pgbench -b simple-update -c$CLIENTS -j$JOBS -T${DURATION}s, scale $SCALE, 2 nodes (primary + streaming replica) on loopback, $(nproc) CPUs"
echo "pgwarden: $("$BIN" --version 2>&1 | head -n1)   Patroni: $("$PATRONI_BIN" --version 2>&1 | head -n1 | awk '{print $2}')   PostgreSQL $PGVER   loadavg before: $LOAD_BEFORE (other load skews the figures)"
printf '%-17s %10s %9s %9s %9s %9s %8s %9s\n' "" tps "avg ms" "sd ms" "p50 ms" "p99 ms" xacts "mgr cpu s"
for k in "${ROWS[@]}"; do
  printf '%-17s %10.1f %9s %9s %9s %9s %8s %9s\n' "${LABEL[${k%-*}]} ${k#*-}" "${TPS[$k]}" "${LAT[$k]}" \
    "${STD[$k]}" "${P50[$k]}" "${P99[$k]}" "${XACTS[$k]:-?}" "${MGRCPU[$k]}"
done
for mode in async sync; do
  a=pgw-$mode b=pat-$mode
  printf '%-17s %10s %9s %9s %9s %9s %8s %9s\n' "pgw/Patroni $mode" "$(ratio "${TPS[$a]}" "${TPS[$b]}")" \
    "$(ratio "${LAT[$a]}" "${LAT[$b]}")" "$(ratio "${STD[$a]}" "${STD[$b]}")" \
    "$(ratio "${P50[$a]}" "${P50[$b]}")" "$(ratio "${P99[$a]}" "${P99[$b]}")" "" \
    "$(ratio "${MGRCPU[$a]}" "${MGRCPU[$b]}")"
done
echo "(mgr cpu s: CPU seconds, user + system, both nodes' manager daemons used during the pgbench run; PostgreSQL not counted)"
for k in "${ROWS[@]}"; do
  case "$k" in *-sync) echo "note: ${LABEL[${k%-*}]} sync: synchronous_standby_names = '${SSN[$k]}'" ;; esac
  [ -n "${FAILED[$k]}" ] && [ "${FAILED[$k]}" != 0 ] && echo "note: ${LABEL[${k%-*}]} ${k#*-}: ${FAILED[$k]} failed transactions"
done
# The primaries' effective settings must be the same in every row.
ref="" same=1
for k in "${ROWS[@]}"; do
  s=$(tr ' ' '\n' <<<"${SETTINGS[$k]}")
  if [ -z "$ref" ]; then ref=$s; refk=$k; continue; fi
  if [ "$s" != "$ref" ]; then
    same=0
    echo "note: settings differ, ${LABEL[${refk%-*}]} ${refk#*-} vs ${LABEL[${k%-*}]} ${k#*-}: $(diff <(echo "$ref") <(echo "$s") | grep '^[<>]' | paste -sd' ' -)"
  fi
done
[ "$same" = 1 ] && echo "settings: the same on every primary ($(tr '\n' ' ' <<<"$ref" | sed 's/ $//'))"
line="sync cost: pgwarden $(pct "${TPS[pgw-sync]}" "${TPS[pgw-async]}") tps vs async (avg latency $(pct "${LAT[pgw-sync]}" "${LAT[pgw-async]}")), Patroni $(pct "${TPS[pat-sync]}" "${TPS[pat-async]}") ($(pct "${LAT[pat-sync]}" "${LAT[pat-async]}"))"
if [ "$BARE" = 1 ]; then
  line="$line, bare PostgreSQL $(pct "${TPS[bare-sync]}" "${TPS[bare-async]}") ($(pct "${LAT[bare-sync]}" "${LAT[bare-async]}"))"
fi
echo "$line"
say "done in $((SECONDS - T0))s"
exit 0
