#!/bin/bash
# demo.sh PGWARDEN_BIN - a three-node pgwarden cluster on 127.0.0.1, then a failover to watch.
#
# What it does (as root, after `make` built the daemon and installed the packages):
#   1. a temporary directory, one etcd, three node configs derived from conf/pgwarden.yml
#      (name, ports, data_dir, etcd host changed; ttl 10 / loop_wait 2 / retry_timeout 3 so the
#      failover fits in a few seconds);
#   2. each node runs in its own cgroup, a stand-in for a whole machine: the daemon, its
#      PostgreSQL and every backend;
#   3. waits for one leader and two streaming replicas, writes rows, powers the leader's
#      machine off (every process of it killed at once), shows the failover, powers it back
#      on and shows it rejoin as a replica;
#   4. keeps the table live until Ctrl-C, which stops everything and leaves no process,
#      cgroup or file behind (PGWARDEN_DEMO_KEEP=1 keeps the directory with the logs).
set -u

BIN=${1:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TEMPLATE=${PGWARDEN_DEMO_TEMPLATE:-$HERE/conf/pgwarden.yml}
ETCD=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL_BIN:-/usr/bin/etcdctl}
PG_BIN=/usr/lib/postgresql/15/bin
NODES="node1 node2 node3"
TTL=10 LOOP_WAIT=2 RETRY_TIMEOUT=3

die() { echo "demo: $*" >&2; exit 1; }

[ -n "$BIN" ] || die "usage: $0 PATH/TO/pgwarden"
[ -x "$BIN" ] || die "$BIN: not an executable (run make first)"
[ "$(id -u)" = 0 ] || die "run me as root (PostgreSQL runs as postgres, nodes live in cgroups)"
[ -r "$TEMPLATE" ] || die "$TEMPLATE is missing"
for t in "$ETCD" "$ETCDCTL" "$PG_BIN/psql" curl; do
  command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/install-deps.sh demo)"
done
id postgres >/dev/null 2>&1 || die "no postgres user (install postgresql-15)"
for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do
  if [ -e "$d/cgroup.subtree_control" ]; then CGROOT=$d; break; fi
done
[ -n "${CGROOT:-}" ] || die "no cgroup v2 hierarchy found under /sys/fs/cgroup"

unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY
export no_proxy='*' NO_PROXY='*'

# ---------------------------------------------------------------------------------------
# terminal output
# ---------------------------------------------------------------------------------------
if [ -t 1 ]; then
  B=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GRN=$'\e[32m' YEL=$'\e[33m' CYA=$'\e[36m' R=$'\e[0m'
  TTY=1
else
  B= DIM= RED= GRN= YEL= CYA= R= TTY=
fi
T_START=$(date +%s.%N)
EVENTS=()
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f", b - a }'; }
event() {
  EVENTS+=("$(elapsed)s  $*")
  [ -n "$TTY" ] || echo "[$(elapsed)s] $*" | sed 's/\x1b\[[0-9;]*m//g'
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------
# cleanup: every process is in one of our cgroups; kill them, remove the cgroups
# ---------------------------------------------------------------------------------------
RUN=pgwdemo-$$
DEMO=
CLEANED=
cg() { echo "$CGROOT/$RUN-$1"; }
cg_kill() {
  local d; d=$(cg "$1")
  [ -d "$d" ] || return 0
  echo 0 > "$d/cgroup.freeze" 2>/dev/null
  for _ in $(seq 100); do
    grep -q '^populated 0' "$d/cgroup.events" 2>/dev/null && break
    if [ -e "$d/cgroup.kill" ]; then echo 1 > "$d/cgroup.kill" 2>/dev/null
    else for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; fi
    sleep 0.1
  done
}
cg_remove() { cg_kill "$1"; rmdir "$(cg "$1")" 2>/dev/null; }
daemon_pid() {  # the pgwarden process of a node's machine
  local p
  for p in $(cat "$(cg "$1")/cgroup.procs" 2>/dev/null); do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = pgwarden ] && { echo "$p"; return; }
  done
}
cleanup() {
  [ -n "$CLEANED" ] && return
  CLEANED=1
  trap '' INT TERM
  [ -n "$TTY" ] && printf '%s' "$R"
  echo
  echo "demo: stopping the nodes and etcd ..."
  local n pids=""
  for n in $NODES; do pids="$pids $(daemon_pid "$n")"; done
  # A clean stop first (each daemon stops its PostgreSQL), at most 15 s, then power off.
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 150); do
    local alive=
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for n in $NODES etcd; do cg_remove "$n"; done
  for d in "$CGROOT/$RUN"-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  if [ -n "$DEMO" ] && [ -d "$DEMO" ]; then
    if [ -n "${PGWARDEN_DEMO_KEEP:-}" ]; then echo "demo: logs and data kept in $DEMO"
    else rm -rf "$DEMO"; fi
  fi
  left=$(ls -d "$CGROOT/$RUN"-* 2>/dev/null)
  [ -z "$left" ] && echo "demo: everything stopped, no process and no cgroup left." \
                 || echo "demo: WARNING: could not remove $left"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# ports, directories, configs
# ---------------------------------------------------------------------------------------
USED=" "
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
pick_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    case "$USED" in *" $p "*) continue ;; esac
    port_free "$p" && { USED="$USED$p "; echo "$p"; return; }
  done
}

DEMO=$(mktemp -d /tmp/pgwarden-demo.XXXXXX) || die "mktemp failed"
chmod 755 "$DEMO"
ETCD_PORT=$(pick_port); USED="$USED$ETCD_PORT "
ETCD_PEER=$(pick_port); USED="$USED$ETCD_PEER "
declare -A PG REST DIR
for n in $NODES; do
  PG[$n]=$(pick_port); USED="$USED${PG[$n]} "
  REST[$n]=$(pick_port); USED="$USED${REST[$n]} "
  DIR[$n]=$DEMO/$n
done

SCOPE=$(sed -n 's/^scope:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
NAMESPACE=$(sed -n 's/^namespace:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
SCOPE=${SCOPE:-demo} NAMESPACE=${NAMESPACE:-/service/}
PREFIX="${NAMESPACE%/}/$SCOPE/"
SUPERUSER=$(sed -n '/^    superuser:/,/^    [a-z]/ s/^      username:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
SUPERPW=$(sed -n '/^    superuser:/,/^    [a-z]/ s/^      password:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
SUPERUSER=${SUPERUSER:-postgres}
[ -n "$SUPERPW" ] || die "$TEMPLATE: no postgresql.authentication.superuser.password"

# node config = the example with this node's name, ports, data_dir, socket dir, etcd and timing
derive() {
  local n=$1 d=${DIR[$1]}
  sed -e "s|^name:.*|name: $n|" \
      -e "/^restapi:/,/^[^[:space:]#]/ s|^\(  listen:\).*|\1 127.0.0.1:${REST[$n]}|" \
      -e "/^restapi:/,/^[^[:space:]#]/ s|^\(  connect_address:\).*|\1 127.0.0.1:${REST[$n]}|" \
      -e "/^etcd3:/,/^[^[:space:]#]/ s|^\(    - \)[^#]*|\1127.0.0.1:$ETCD_PORT|" \
      -e "/^etcd3:/,/^[^[:space:]#]/ s|^\(  hosts:\)[[:space:]]*[^[:space:]#].*|\1 127.0.0.1:$ETCD_PORT|" \
      -e "/^postgresql:/,/^[^[:space:]#]/ s|^\(  listen:\).*|\1 127.0.0.1:${PG[$n]}|" \
      -e "/^postgresql:/,/^[^[:space:]#]/ s|^\(  connect_address:\).*|\1 127.0.0.1:${PG[$n]}|" \
      -e "/^postgresql:/,/^[^[:space:]#]/ s|^\(  data_dir:\).*|\1 $d/data|" \
      -e "/^postgresql:/,/^[^[:space:]#]/ s|^\(    unix_socket_directories:\).*|\1 $d|" \
      -e "s|^\(    ttl:[[:space:]]*\)[0-9]*|\1$TTL|" \
      -e "s|^\(    loop_wait:[[:space:]]*\)[0-9]*|\1$LOOP_WAIT|" \
      -e "s|^\(    retry_timeout:[[:space:]]*\)[0-9]*|\1$RETRY_TIMEOUT|" \
      "$TEMPLATE"
}
for n in $NODES; do
  mkdir -p "${DIR[$n]}"
  derive "$n" > "${DIR[$n]}/pgwarden.yml"
  chown -R postgres:postgres "${DIR[$n]}"
  chmod 700 "${DIR[$n]}"; chmod 600 "${DIR[$n]}/pgwarden.yml"
  c=${DIR[$n]}/pgwarden.yml
  for want in "name: $n" "127.0.0.1:${REST[$n]}" "127.0.0.1:${PG[$n]}" "${DIR[$n]}/data" \
              "127.0.0.1:$ETCD_PORT" "ttl: $TTL"; do
    grep -qF "$want" "$c" || die "could not derive $c from $TEMPLATE (no \"$want\" after editing)"
  done
  out=$("$BIN" --check-config "$c" 2>&1) || die "$c is not valid: $out"
done

# ---------------------------------------------------------------------------------------
# starting things
# ---------------------------------------------------------------------------------------
start_in_cgroup() {  # NAME LOG CMD... : run CMD in cgroup NAME, in a session of its own
  local name=$1 log=$2; shift 2
  mkdir -p "$(cg "$name")" || die "cannot create cgroup $(cg "$name")"
  setsid sh -c 'echo $$ > "$0" && exec "$@"' "$(cg "$name")/cgroup.procs" "$@" \
    </dev/null >>"$log" 2>&1 &
  disown $!   # no "Killed" job notices when the machine is powered off
}
start_node() {
  echo "=== demo: starting $1 at $(date +%T) ===" >> "${DIR[$1]}/pgwarden.log"
  start_in_cgroup "$1" "${DIR[$1]}/pgwarden.log" "$BIN" "${DIR[$1]}/pgwarden.yml"
}
kill_machine() { cg_kill "$1"; }

etcdctl_() { ETCDCTL_API=3 "$ETCDCTL" --endpoints="127.0.0.1:$ETCD_PORT" --dial-timeout=1s \
               --command-timeout=2s "$@" 2>/dev/null; }
kget() { etcdctl_ get --print-value-only "$PREFIX$1"; }
# First "KEY": value of a JSON text (enough for the flat fields shown here; no jq needed).
jnum() { grep -o "\"$2\":[[:space:]]*-\?[0-9][0-9]*" <<<"$1" | head -1 | sed 's/.*:[[:space:]]*//'; }
jstr() { grep -o "\"$2\":[[:space:]]*\"[^\"]*\"" <<<"$1" | head -1 | sed 's/.*:[[:space:]]*"//; s/"$//'; }
rest() { curl -s --noproxy '*' -m 1 "http://127.0.0.1:${REST[$1]}$2"; }
rest_code() { curl -s --noproxy '*' -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${REST[$1]}$2"; }
psql_() {  # NODE SQL
  PGPASSWORD=$SUPERPW PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=${PG[$1]} user=$SUPERUSER dbname=postgres" -c "$2" 2>/dev/null
}
leader() { kget leader; }
human() {  # bytes -> short text
  awk -v b="$1" 'BEGIN { if (b == "") print "";
    else if (b < 1024) printf "%d B\n", b; else if (b < 1048576) printf "%.1f kB\n", b/1024;
    else printf "%.1f MB\n", b/1048576 }'
}

# ---------------------------------------------------------------------------------------
# the live table
# ---------------------------------------------------------------------------------------
draw() {
  local ldr optime n m role state tl xlog lag rj rrole rstate line rows=()
  ldr=$(leader)
  optime=$(jnum "$(kget status)" optime)
  for n in $NODES; do
    m=$(kget "members/$n")
    rj=$(rest "$n" /patroni)
    role=$(jstr "$m" role) state=$(jstr "$m" state) tl=$(jnum "$m" timeline) xlog=$(jnum "$m" xlog_location)
    rrole=$(jstr "$rj" role) rstate=$(jstr "$rj" state)
    lag=
    if [ -n "$m" ] && [ "$n" != "$ldr" ] && [ -n "$optime" ] && [ -n "$xlog" ]; then
      lag=$(human $(( optime > xlog ? optime - xlog : 0 )))
    fi
    [ "$n" = "$ldr" ] && role="Leader ($role)"
    if [ -z "$(cat "$(cg "$n")/cgroup.procs" 2>/dev/null)" ]; then
      line=$(printf "%-6s %-16s ${RED}%-18s %-10s${R} %-3s %-9s %s" "$n" "127.0.0.1:${PG[$n]}" \
             "${role:--}" "POWER OFF" "${tl:--}" "${lag:--}" "${DIM}machine down${R}")
    else
      local col=$GRN
      [ "$n" = "$ldr" ] && col=$B$CYA
      [ "$state" = running ] || col=$YEL
      line=$(printf "%-6s %-16s ${col}%-18s %-10s${R} %-3s %-9s %s" "$n" "127.0.0.1:${PG[$n]}" \
             "${role:-(no key)}" "${state:--}" "${tl:--}" "${lag:--}" \
             "${rrole:+$rrole/}${rstate:-not answering}")
    fi
    rows+=("$line")
  done
  if [ -n "$TTY" ]; then
    printf '\e[H\e[2J'
    echo "${B}pgwarden demo${R} - cluster ${B}$SCOPE${R}, etcd 127.0.0.1:$ETCD_PORT, ttl ${TTL}s, loop_wait ${LOOP_WAIT}s   ${DIM}(Ctrl-C stops everything)${R}"
    echo "${DIM}directory $DEMO; daemon logs: <node>/pgwarden.log, PostgreSQL logs: <node>/data.log${R}"
    echo
    printf "${B}%-6s %-16s %-18s %-10s %-3s %-9s %s${R}\n" Member Host Role State TL Lag "REST /patroni"
    printf '%s\n' "${rows[@]}"
    echo
    echo "${B}What happened${R}"
    local first=$(( ${#EVENTS[@]} > 14 ? ${#EVENTS[@]} - 14 : 0 ))
    printf '  %s\n' "${EVENTS[@]:$first}"
  else
    local now; now=$(date +%s)
    if [ $(( now - ${LAST_PLAIN:-0} )) -ge 5 ]; then
      LAST_PLAIN=$now
      printf "%-6s %-16s %-18s %-10s %-3s %-9s %s\n" Member Host Role State TL Lag "REST /patroni"
      printf '%s\n' "${rows[@]}"
    fi
  fi
}

# watch SECONDS [COND]: redraw every second for SECONDS, or until COND (a command) succeeds.
watch_until() {
  local secs=$1 cond=${2:-false} end
  end=$(( $(date +%s) + secs ))
  while :; do
    draw
    eval "$cond" && return 0
    [ "$(date +%s)" -ge "$end" ] && { [ "$cond" = false ] && return 0 || return 1; }
    sleep 1
  done
}

# ---------------------------------------------------------------------------------------
# the story
# ---------------------------------------------------------------------------------------
mkdir -p "$DEMO/etcd"
start_in_cgroup etcd "$DEMO/etcd/etcd.log" "$ETCD" --name demo --data-dir "$DEMO/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "demo=http://127.0.0.1:$ETCD_PEER" --logger zap --log-level warn
for _ in $(seq 100); do etcdctl_ endpoint health >/dev/null && break; sleep 0.2; done
etcdctl_ endpoint health >/dev/null || die "etcd did not start (see $DEMO/etcd/etcd.log)"
event "etcd is up on 127.0.0.1:$ETCD_PORT"

for n in $NODES; do start_node "$n"; done
event "started node1, node2, node3 (configs derived from ${TEMPLATE#$HERE/}), each in its own cgroup"
T0=$(date +%s.%N)

healthy() {
  local l; l=$(leader)
  [ -n "$l" ] && [ "$(rest_code "$l" /primary)" = 200 ] || return 1
  for n in $NODES; do [ "$n" = "$l" ] || [ "$(rest_code "$n" /replica)" = 200 ] || return 1; done
  [ "$(psql_ "$l" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ]
}
if watch_until 180 healthy; then
  L=$(leader)
  event "${GRN}bootstrapped in $(since "$T0") s${R}: leader $B$L$R, two replicas streaming from it"
else
  event "${RED}the cluster did not become healthy within 180 s${R} - see the logs in $DEMO"
  watch_until 100000000
fi

psql_ "$L" "CREATE TABLE IF NOT EXISTS demo (id serial PRIMARY KEY, note text, at timestamptz DEFAULT now())" >/dev/null
psql_ "$L" "INSERT INTO demo (note) SELECT 'before the failover #' || g FROM generate_series(1, 3) g" >/dev/null
sleep 0.5
event "wrote 3 rows on $L; rows on the replicas:$(for n in $NODES; do [ "$n" = "$L" ] || printf ' %s %s' "$n" "$(psql_ "$n" 'SELECT count(*) FROM demo')"; done)"
watch_until 6

event "${RED}${B}powering off the leader's machine: $L${R} (daemon, postmaster and every backend killed at once)"
T0=$(date +%s.%N)
kill_machine "$L"
new_leader() { local l; l=$(leader); [ -n "$l" ] && [ "$l" != "$L" ]; }
if watch_until $(( TTL * 4 )) new_leader; then
  N=$(leader)
  event "${B}$N${R} took the leader key $(since "$T0") s after the power loss (lease ttl ${TTL}s expired)"
  if watch_until 30 "[ \"\$(psql_ $N 'SELECT NOT pg_is_in_recovery()')\" = t ]"; then
    event "${GRN}$N accepts writes${R} $(since "$T0") s after the power loss (timeline $(jnum "$(kget members/"$N")" timeline))"
  fi
  psql_ "$N" "INSERT INTO demo (note) VALUES ('written on $N after the failover')" >/dev/null
  OTHER=$(for n in $NODES; do [ "$n" = "$L" ] || [ "$n" = "$N" ] || echo "$n"; done)
  watch_until 30 "[ \"\$(rest_code $OTHER /replica)\" = 200 ] && [ \"\$(psql_ $N \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\")\" = 1 ]" \
    && event "$OTHER follows $N (no re-clone)"
else
  N=
  event "${RED}no new leader within $(( TTL * 4 )) s${R} - see the logs in $DEMO"
fi
watch_until 5

event "${B}powering $L back on${R}"
T0=$(date +%s.%N)
LOGSIZE=$(stat -c %s "${DIR[$L]}/pgwarden.log" 2>/dev/null || echo 0)
start_node "$L"
rejoined() {
  [ "$(rest_code "$L" /replica)" = 200 ] &&
  [ "$(psql_ "$L" "SELECT status FROM pg_stat_wal_receiver")" = streaming ]
}
if [ -n "$N" ] && watch_until 120 rejoined; then
  how="restarted as a replica"
  tail -c +"$((LOGSIZE + 1))" "${DIR[$L]}/pgwarden.log" | grep -qi 'rewound\|pg_rewind' && how="rewound with pg_rewind"
  tail -c +"$((LOGSIZE + 1))" "${DIR[$L]}/pgwarden.log" | grep -qi 're-clon\|pg_basebackup' && how="re-cloned"
  event "${GRN}$L rejoined as a replica of $N${R} after $(since "$T0") s ($how); it has $(psql_ "$L" 'SELECT count(*) FROM demo') rows, the new one included"
else
  event "${YEL}$L has not rejoined as a streaming replica within 120 s${R} - see ${DIR[$L]}/pgwarden.log"
fi
event "that's the demo: the table stays live; press ${B}Ctrl-C${R} to stop everything"
watch_until 100000000
