#!/bin/bash
# demo.sh PGWARDEN_BIN - a three-node pgwarden cluster on 127.0.0.1, then a fenced failover to watch.
#
# What it does (as root, after `make` built the daemon and installed the packages):
#   1. a temporary directory, one etcd, three node configs derived from conf/pgwarden.yml
#      (name, ports, data_dir, etcd host changed; ttl 10 / loop_wait 2 / retry_timeout 3 so the
#      failover fits in a few seconds) plus a `fencing:` block: mode required, native IPMI,
#      fast_takeover_after 2;
#   2. each node runs in its own cgroup, a stand-in for a whole machine: the daemon, its
#      PostgreSQL and every backend; each machine has a simulated BMC (OpenIPMI's ipmi_sim on
#      its own UDP port, outside the machine's cgroup, with tests/ipmi/chassis.sh as its
#      chassis: power status = the cgroup has processes, power off = cgroup.kill, power on =
#      <node>/bmc/power-on.cmd, which starts the node's daemon, run inside the cgroup);
#   3. waits for one leader and two streaming replicas, writes rows, cuts the leader machine's
#      power (every process of it killed at once), shows the fence (the audit records as the
#      surviving nodes write them: intent, power off through the BMC, its confirmation, the
#      promotion), the new primary accepting writes and the other replica following; then
#      `pgwardenctl unfence` has the old leader's BMC power it on again, and it rejoins as a
#      replica;
#   4. keeps the table live until Ctrl-C, which stops everything (BMCs included) and leaves no
#      process, cgroup or file behind (PGWARDEN_DEMO_KEEP=1 keeps the directory with the logs).
set -u

BIN=${1:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TEMPLATE=${PGWARDEN_DEMO_TEMPLATE:-$HERE/conf/pgwarden.yml}
ETCD=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL_BIN:-/usr/bin/etcdctl}
IPMI_SIM=${IPMI_SIM:-/usr/bin/ipmi_sim}
IPMITOOL=${IPMITOOL_BIN:-/usr/bin/ipmitool}   # optional: only to show what a BMC answers
IPMI_DIR=$HERE/tests/ipmi                     # chassis.sh, lan.conf.in, cmds.emu
PG_BIN=/usr/lib/postgresql/15/bin
NODES="node1 node2 node3"
TTL=10 LOOP_WAIT=2 RETRY_TIMEOUT=3
FAST_TAKEOVER=2                               # fencing.fast_takeover_after, s
BMC_USER=admin BMC_PASS=demo-bmc-pass         # one user on every simulated BMC

die() { echo "demo: $*" >&2; exit 1; }

[ -n "$BIN" ] || die "usage: $0 PATH/TO/pgwarden"
[ -x "$BIN" ] || die "$BIN: not an executable (run make first)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")   # the BMCs start it from elsewhere
CTL=$(dirname "$BIN")/pgwardenctl
[ -x "$CTL" ] || die "$CTL: not an executable (run make first)"
[ "$(id -u)" = 0 ] || die "run me as root (PostgreSQL runs as postgres, nodes live in cgroups)"
[ -r "$TEMPLATE" ] || die "$TEMPLATE is missing"
for t in "$ETCD" "$ETCDCTL" "$PG_BIN/psql" curl; do
  command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/install-deps.sh demo)"
done
[ -x "$IPMI_SIM" ] || die "$IPMI_SIM is missing (apt-get install openipmi: the simulated BMCs)"
for f in chassis.sh lan.conf.in cmds.emu; do
  [ -r "$IPMI_DIR/$f" ] || die "$IPMI_DIR/$f is missing (the simulated BMC's files)"
done
[ -x "$IPMI_DIR/chassis.sh" ] || die "$IPMI_DIR/chassis.sh is not executable"
HAVE_IPMITOOL=
[ -x "$IPMITOOL" ] && HAVE_IPMITOOL=1
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
  B='' DIM='' RED='' GRN='' YEL='' CYA='' R='' TTY=''
fi
T_START=$(date +%s.%N)
EVENTS=()
elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f", b - a }'; }
event() {
  EVENTS+=("$(elapsed)s  $*")
  [ -n "$TTY" ] || echo "[$(elapsed)s] $*" | sed 's/\x1b\[[0-9;]*m//g'
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }   # A B -> B - A

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
cg_on() { grep -q '^populated 1' "$(cg "$1")/cgroup.events" 2>/dev/null; }
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
  echo "demo: stopping the BMCs, the nodes and etcd ..."
  local n pids="" left stray
  # The BMCs first: a power on that came late would bring a node back during the stop.
  for n in $NODES; do cg_remove "bmc-$n"; done
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
  # Nothing may run outside the cgroups either: every process of the demo names its directory.
  stray=
  if [ -n "$DEMO" ]; then
    sleep 0.2
    stray=$(pgrep -f -- "$DEMO/" 2>/dev/null | grep -vx "$$")
    [ -n "$stray" ] && { kill -9 $stray 2>/dev/null; sleep 0.2; }
  fi
  if [ -n "$DEMO" ] && [ -d "$DEMO" ]; then
    if [ -n "${PGWARDEN_DEMO_KEEP:-}" ]; then echo "demo: logs and data kept in $DEMO"
    else rm -rf "$DEMO"; fi
  fi
  left=$(ls -d "$CGROOT/$RUN"-* 2>/dev/null)
  [ -n "$stray" ] && echo "demo: WARNING: processes outside the node cgroups had to be killed: $stray"
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
# ipmi_sim binds with SO_REUSEADDR, so a taken UDP port would be shared silently: look
# at the kernel's socket table (local address column, port in hex).
udp_bound() { grep -qi "^ *[0-9]*: [0-9A-F]*:$(printf %04X "$1") " /proc/net/udp /proc/net/udp6 2>/dev/null; }
pick_port() {  # [udp]
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    case "$USED" in *" $p "*) continue ;; esac
    if [ "${1:-}" = udp ]; then udp_bound "$p" && continue
    else port_free "$p" || continue; fi
    USED="$USED$p "; echo "$p"; return
  done
}

DEMO=$(mktemp -d /tmp/pgwarden-demo.XXXXXX) || die "mktemp failed"
chmod 755 "$DEMO"
ETCD_PORT=$(pick_port); USED="$USED$ETCD_PORT "
ETCD_PEER=$(pick_port); USED="$USED$ETCD_PEER "
declare -A PG REST DIR BMC BDIR
for n in $NODES; do
  PG[$n]=$(pick_port); USED="$USED${PG[$n]} "
  REST[$n]=$(pick_port); USED="$USED${REST[$n]} "
  BMC[$n]=$(pick_port udp); USED="$USED${BMC[$n]} "
  DIR[$n]=$DEMO/$n
  BDIR[$n]=$DEMO/$n/bmc
done

SCOPE=$(sed -n 's/^scope:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
NAMESPACE=$(sed -n 's/^namespace:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
SCOPE=${SCOPE:-demo} NAMESPACE=${NAMESPACE:-/service/}
PREFIX="${NAMESPACE%/}/$SCOPE/"
SUPERUSER=$(sed -n '/^    superuser:/,/^    [a-z]/ s/^      username:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
SUPERPW=$(sed -n '/^    superuser:/,/^    [a-z]/ s/^      password:[[:space:]]*\([^#[:space:]]*\).*/\1/p' "$TEMPLATE" | head -1)
SUPERUSER=${SUPERUSER:-postgres}
[ -n "$SUPERPW" ] || die "$TEMPLATE: no postgresql.authentication.superuser.password"

# The peers' BMC credentials: owned by postgres (the daemons run as postgres), mode 0600.
SECRET=$DEMO/fencing.secret
(umask 077; printf '# member username password (scripts/demo.sh: the same user on every BMC)\ndefault %s %s\n' \
   "$BMC_USER" "$BMC_PASS" > "$SECRET") || die "cannot write $SECRET"
chown postgres:postgres "$SECRET" && chmod 600 "$SECRET" || die "cannot chown/chmod $SECRET"

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
      -e "/^watchdog:/,/^[^[:space:]#]/ s|^\(  mode:\).*|\1 off|" \
      "$TEMPLATE" |
  # an uncommented top-level fencing: block of the template is replaced by the demo's
  awk '/^fencing:/ { skip = 1; next } skip && /^[^[:space:]]/ { skip = 0 } !skip'
  cat <<EOF

# Added by scripts/demo.sh: STONITH through this node's simulated BMC (ipmi_sim on
# 127.0.0.1:${BMC[$n]}); a replica promotes only once the old leader's BMC confirmed it off.
fencing:
  mode: required
  agent: ipmi
  timeout: 10
  retries: 1
  fast_takeover_after: $FAST_TAKEOVER
  audit_log: $d/fencing.log
  credentials_file: $SECRET
  bmc:
    address: 127.0.0.1:${BMC[$n]}
    lanplus: true
    cipher_suite: 3
  peers:
$(for m in $NODES; do printf '    %s: {address: 127.0.0.1:%s, lanplus: true, cipher_suite: 3}\n' "$m" "${BMC[$m]}"; done)
EOF
}
for n in $NODES; do
  mkdir -p "${DIR[$n]}"
  derive "$n" > "${DIR[$n]}/pgwarden.yml"
  chown -R postgres:postgres "${DIR[$n]}"
  chmod 700 "${DIR[$n]}"; chmod 600 "${DIR[$n]}/pgwarden.yml"
  c=${DIR[$n]}/pgwarden.yml
  # the packaged file arms /dev/watchdog (automatic): three demo nodes on one host must
  # never arm the host's own watchdog, since a killed demo leader would reset the host
  for want in "name: $n" "127.0.0.1:${REST[$n]}" "127.0.0.1:${PG[$n]}" "${DIR[$n]}/data" \
              "127.0.0.1:$ETCD_PORT" "ttl: $TTL" "address: 127.0.0.1:${BMC[$n]}" \
              "  mode: off"; do
    grep -qF "$want" "$c" || die "could not derive $c from $TEMPLATE (no \"$want\" after editing)"
  done
  [ "$(grep -c '^fencing:' "$c")" = 1 ] || die "could not derive $c: not exactly one fencing: block"
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

# One simulated BMC per machine (the files of tests/integration/bmc.py, without Python):
# ipmi_sim in a cgroup of its own (bmc-NODE, not the machine's: it survives the power
# loss), its chassis program tests/ipmi/chassis.sh working on the machine's cgroup.
start_bmc() {
  local n=$1 b=${BDIR[$1]}
  mkdir -p "$b" && rm -rf "$b/bmc-state" && mkdir "$b/bmc-state" || return 1
  printf '# written by scripts/demo.sh, sourced by tests/ipmi/chassis.sh\nCGROUP=%q\nOFF_DELAY_MS=0\n' \
    "$(cg "$n")" > "$b/bmc.conf"
  sed -e "s|@NAME@|bmc${BMC[$n]}|g" -e "s|@PORT@|${BMC[$n]}|g" \
      -e "s|@CHASSIS@|$IPMI_DIR/chassis.sh $b|g" \
      -e "s|@USER@|$BMC_USER|g" -e "s|@PASS@|$BMC_PASS|g" "$IPMI_DIR/lan.conf.in" > "$b/bmc-lan.conf"
  chmod 600 "$b/bmc-lan.conf"
  # What "power on" starts inside the machine's cgroup (chassis.sh runs it with $1 = $b).
  cat > "$b/power-on.cmd" <<EOF
#!/bin/sh
# written by scripts/demo.sh: what $n's BMC starts when it powers the machine on (it runs
# in the machine's cgroup already): the node's daemon, which starts its PostgreSQL.
echo "=== demo: $n powered on by its BMC at \$(date +%T) ===" >> '${DIR[$n]}/pgwarden.log'
exec '$BIN' '${DIR[$n]}/pgwarden.yml' >> '${DIR[$n]}/pgwarden.log' 2>&1
EOF
  chmod 755 "$b/power-on.cmd"
  udp_bound "${BMC[$n]}" && { echo "demo: UDP port ${BMC[$n]} was taken meanwhile" >&2; return 1; }
  start_in_cgroup "bmc-$n" "$b/ipmi_sim.log" \
    "$IPMI_SIM" -c "$b/bmc-lan.conf" -f "$IPMI_DIR/cmds.emu" -s "$b/bmc-state" -n
}
bmc_tool() {  # NODE IPMITOOL-ARGS... : ipmitool against NODE's BMC (lanplus, cipher 3)
  local n=$1; shift
  IPMI_PASSWORD=$BMC_PASS timeout 8 "$IPMITOOL" -I lanplus -C 3 -N 1 -R 2 -H 127.0.0.1 \
    -p "${BMC[$n]}" -U "$BMC_USER" -E "$@" 2>&1
}
bmc_ready() {
  cg_on "bmc-$1" && udp_bound "${BMC[$1]}" || return 1
  [ -z "$HAVE_IPMITOOL" ] || bmc_tool "$1" chassis power status | grep -q 'Chassis Power is'
}

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
# the fencing audit logs: each new record becomes an event, as soon as it is written
# ---------------------------------------------------------------------------------------
declare -A AUDIT_SEEN   # node -> records already shown
T_REF='' REF_WHAT=''      # audit records show their time since this moment (wall clock)
T_FENCE_START='' T_FENCE_OFF='' T_PROMOTE='' T_UNFENCE_ON='' FENCER=''
afield() {  # LINE KEY -> REPLY: a string or number field of one audit record, or -
  if [[ $1 =~ \"$2\":\"([^\"]*)\" ]] || [[ $1 =~ \"$2\":(-?[0-9.]+) ]]; then
    REPLY=${BASH_REMATCH[1]}
  else
    REPLY=-
  fi
}
poll_audit() {
  local n f i l lines seq actor action target result reason wall at rel col bad
  for n in $NODES; do
    f=${DIR[$n]}/fencing.log
    [ -s "$f" ] || continue
    mapfile -t lines 2>/dev/null < "$f" || continue
    for (( i = ${AUDIT_SEEN[$n]:-0}; i < ${#lines[@]}; i++ )); do
      l=${lines[$i]}
      [[ $l == *'"hash":"'*'"}' ]] || break   # still being written: next time
      AUDIT_SEEN[$n]=$((i + 1))
      afield "$l" seq; seq=$REPLY
      afield "$l" actor; actor=$REPLY
      afield "$l" action; action=$REPLY
      afield "$l" target; target=$REPLY
      afield "$l" result; result=$REPLY
      afield "$l" reason; reason=$REPLY
      afield "$l" wall; wall=$REPLY
      at=$(date -d "$wall" +%s.%N 2>/dev/null)
      rel=
      [ -n "$at" ] && [ -n "$T_REF" ] && rel=$(diff_s "$T_REF" "$at")
      case "$action/$result" in
        fence-intent/*) T_FENCE_START=${T_FENCE_START:-$at} FENCER=${FENCER:-$actor} ;;
        fence-result/off-confirmed) T_FENCE_OFF=${T_FENCE_OFF:-$at} ;;
        promote/ok) T_PROMOTE=${T_PROMOTE:-$at} ;;
        unfence-result/on) T_UNFENCE_ON=${T_UNFENCE_ON:-$at} ;;
      esac
      bad=
      case "$result" in
        failed|timeout|error|refused) col=$RED bad=1 ;;
        off-confirmed|ok|on|off) col=$GRN ;;
        *) col='' ;;
      esac
      [ -n "$bad" ] && [ "$reason" != - ] && result="$result ($reason)"   # why it failed
      event "${CYA}audit${R} #$seq $actor ${B}$action${R} $target ${col}$result${R}${rel:+  ${DIM}(+${rel} s after the $REF_WHAT)${R}}"
    done
  done
}

# ---------------------------------------------------------------------------------------
# the live table
# ---------------------------------------------------------------------------------------
fmt="%-6s %-16s %-10s %-18s %-10s %-3s %-9s %s"
draw() {
  local ldr optime n m role state tl xlog lag rj rrole rstate line bmc rows=()
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
    # colours go around padded fields, so that the columns stay aligned
    if cg_on "bmc-$n"; then printf -v bmc "%-10s" "udp:${BMC[$n]}"
    else printf -v bmc "${RED}%-10s${R}" "BMC down"; fi
    if ! cg_on "$n"; then
      printf -v line "%-6s %-16s %s ${RED}%-18s %-10s${R} %-3s %-9s %s" "$n" "127.0.0.1:${PG[$n]}" \
             "$bmc" "${role:--}" "POWER OFF" "${tl:--}" "${lag:--}" "${DIM}machine down${R}"
    else
      local col=$GRN
      [ "$n" = "$ldr" ] && col=$B$CYA
      [ "$state" = running ] || col=$YEL
      printf -v line "%-6s %-16s %s ${col}%-18s %-10s${R} %-3s %-9s %s" "$n" "127.0.0.1:${PG[$n]}" \
             "$bmc" "${role:-(no key)}" "${state:--}" "${tl:--}" "${lag:--}" \
             "${rrole:+$rrole/}${rstate:-not answering}"
    fi
    rows+=("$line")
  done
  if [ -n "$TTY" ]; then
    local rowsz max first frame
    rowsz=$(tput lines 2>/dev/null || echo 24)
    max=$(( rowsz - 12 )); [ "$max" -lt 8 ] && max=8
    first=$(( ${#EVENTS[@]} > max ? ${#EVENTS[@]} - max : 0 ))
    # One write per frame, each line cleared to its end: no flicker.
    frame=$(
      echo "${B}pgwarden demo${R} - cluster ${B}$SCOPE${R}, etcd 127.0.0.1:$ETCD_PORT, ttl ${TTL}s, loop_wait ${LOOP_WAIT}s, fencing required (IPMI, fast takeover after ${FAST_TAKEOVER}s)   ${DIM}(Ctrl-C stops everything)${R}"
      echo "${DIM}directory $DEMO; per node: pgwarden.log, data.log (PostgreSQL), fencing.log (audit), bmc/chassis.log; BMCs: ipmi_sim on 127.0.0.1, user $BMC_USER${R}"
      echo
      printf "${B}$fmt${R}\n" Member Host BMC Role State TL Lag "REST /patroni"
      printf '%s\n' "${rows[@]}"
      echo
      echo "${B}What happened${R}"
      printf '  %s\n' "${EVENTS[@]:$first}"
    )
    printf '\e[H%s\e[J' "${frame//$'\n'/$'\e[K\n'}"
  else
    local now; now=$(date +%s)
    if [ $(( now - ${LAST_PLAIN:-0} )) -ge 5 ]; then
      LAST_PLAIN=$now
      printf "$fmt\n" Member Host BMC Role State TL Lag "REST /patroni"
      printf '%s\n' "${rows[@]}"
    fi
  fi
}

# watch SECONDS [COND]: show new audit records and redraw every 0.5 s for SECONDS, or until
# COND (a command) succeeds.
watch_until() {
  local secs=$1 cond=${2:-false} end
  end=$(( $(date +%s) + secs ))
  while :; do
    poll_audit
    draw
    eval "$cond" && return 0
    [ "$(date +%s)" -ge "$end" ] && { [ "$cond" = false ] && return 0 || return 1; }
    sleep 0.5
  done
}
[ -n "$TTY" ] && printf '\e[H\e[2J'

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

for n in $NODES; do
  start_bmc "$n" || die "cannot start $n's BMC"
done
for n in $NODES; do
  for _ in $(seq 50); do bmc_ready "$n" && break; sleep 0.2; done
  bmc_ready "$n" || die "$n's BMC (ipmi_sim on udp:${BMC[$n]}) does not answer within 10 s (see ${BDIR[$n]}/ipmi_sim.log)"
done
event "one simulated BMC per machine (ipmi_sim, IPMI 2.0):$(for n in $NODES; do printf ' %s udp:%s' "$n" "${BMC[$n]}"; done)"

for n in $NODES; do start_node "$n"; done
event "started node1, node2, node3 (configs derived from ${TEMPLATE#$HERE/}, fencing required), each in its own cgroup"
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

# --- the power loss, the fence, the failover ---------------------------------------------
event "${RED}${B}power loss on the leader's machine $L${R} (daemon, postmaster and every backend killed at once; its BMC udp:${BMC[$L]} stays up)"
T_LOSS=$(date +%s.%N)
kill_machine "$L"
T_REF=$T_LOSS REF_WHAT="power loss"
event "no replica may promote before $L's BMC confirms it off; fast takeover: $L unreachable for ${FAST_TAKEOVER}s is enough, no need to wait for the ${TTL}s lease"
new_leader() { local l; l=$(leader); [ -n "$l" ] && [ "$l" != "$L" ]; }
N=
if watch_until $(( TTL * 4 )) new_leader; then
  N=$(leader)
  took=$(since "$T_LOSS")
  if awk -v t="$took" -v l="$TTL" 'BEGIN { exit !(t < l) }'; then
    why="fast takeover, before the ${TTL}s lease ran out"
  else
    why="after the ${TTL}s lease expired"
  fi
  event "${B}$N${R} took the leader key $took s after the power loss ($why)"
  if watch_until 30 "[ \"\$(psql_ $N 'SELECT NOT pg_is_in_recovery()')\" = t ]"; then
    T_WRITES=$(date +%s.%N)
    if psql_ "$N" "INSERT INTO demo (note) VALUES ('written on $N after the failover')" >/dev/null; then
      event "${GRN}$N accepts writes${R} $(diff_s "$T_LOSS" "$T_WRITES") s after the power loss (timeline $(jnum "$(kget members/"$N")" timeline)); wrote a row"
    else
      event "${YEL}$N is out of recovery but the INSERT failed${R}"
    fi
  else
    event "${RED}$N holds the key but is not accepting writes 30 s later${R} - see ${DIR[$N]}/pgwarden.log"
  fi
  watch_until 3 "[ -n \"\$T_PROMOTE\" ]"   # the promote record follows pg_ctl promote
  [ -n "$T_FENCE_OFF" ] || event "${YEL}no fence-result off-confirmed record seen in the audit logs${R}"
  if [ -z "$T_PROMOTE" ]; then
    if [ -n "$FENCER" ] && [ "$FENCER" != "$N" ]; then
      event "${YEL}no promote record: $FENCER fenced $L, but $N took the key and promoted: no audit log records that promotion${R}"
    else
      event "${YEL}no promote record seen in the audit logs within 3 s${R}"
    fi
  fi
  summary="power loss 0.0 s"
  [ -n "$T_FENCE_START" ] && summary="$summary -> fence started +$(diff_s "$T_LOSS" "$T_FENCE_START") s"
  [ -n "$T_FENCE_OFF" ] && summary="$summary -> off confirmed by the BMC +$(diff_s "$T_LOSS" "$T_FENCE_OFF") s"
  summary="$summary -> $N took the key +$took s"
  [ -n "$T_PROMOTE" ] && summary="$summary -> promoted +$(diff_s "$T_LOSS" "$T_PROMOTE") s"
  [ -n "${T_WRITES:-}" ] && summary="$summary -> accepting writes +$(diff_s "$T_LOSS" "$T_WRITES") s"
  event "${B}timeline${R}: $summary"
  if [ -n "$HAVE_IPMITOOL" ]; then
    st=$(bmc_tool "$L" chassis power status | tail -1)
    event "ipmitool -I lanplus -H 127.0.0.1 -p ${BMC[$L]} chassis power status: ${st:-no answer}"
  fi
  OTHER=$(for n in $NODES; do [ "$n" = "$L" ] || [ "$n" = "$N" ] || echo "$n"; done)
  if watch_until 30 "[ \"\$(rest_code $OTHER /replica)\" = 200 ] && [ \"\$(psql_ $N \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\")\" = 1 ]"; then
    event "$OTHER follows $N (no re-clone); it has $(psql_ "$OTHER" 'SELECT count(*) FROM demo') rows"
  else
    event "${YEL}$OTHER is not streaming from $N within 30 s${R} - see ${DIR[$OTHER]}/pgwarden.log"
  fi
else
  reason=
  for n in $NODES; do
    [ "$n" = "$L" ] && continue
    r=$(jstr "$(rest "$n" /patroni | grep -o '"fencing":{[^}]*}')" reason)
    [ -n "$r" ] && { reason="$n could not fence $L: $r"; break; }
  done
  event "${RED}no new leader within $(( TTL * 4 )) s${R}${reason:+: $reason} - see pgwarden.log and fencing.log in $DEMO"
fi
watch_until 5

# --- unfence: the old leader's BMC powers it on, it rejoins ------------------------------
if [ -n "$N" ]; then
  event "${B}unfence $L${R}: pgwardenctl -c $N/pgwarden.yml unfence $SCOPE $L --force"
  draw
  T_UNFENCE=$(date +%s.%N)
  T_REF=$T_UNFENCE REF_WHAT="unfence"
  LOGSIZE=$(stat -c %s "${DIR[$L]}/pgwarden.log" 2>/dev/null || echo 0)
  out=$(timeout 60 "$CTL" -c "${DIR[$N]}/pgwarden.yml" unfence "$SCOPE" "$L" --force </dev/null 2>&1)
  rc=$?
  while IFS= read -r line; do
    [ -n "$line" ] && event "  ${DIM}pgwardenctl:${R} $line"
  done <<<"$out"
  if [ "$rc" != 0 ]; then
    event "${RED}pgwardenctl unfence failed (exit $rc)${R}: $L stays powered off - see ${DIR[$N]}/pgwarden.log"
  elif ! watch_until 20 "cg_on $L"; then
    event "${RED}$L's BMC did not power it on within 20 s${R} - see ${BDIR[$L]}/chassis.log and power-on.log"
  else
    # chassis.log: <mono> <wall> on <result> [key=value...], the time the BMC acted
    on=$(grep -E '^[^ ]+ [0-9.]+ on ' "${BDIR[$L]}/chassis.log" 2>/dev/null | tail -1)
    at=$(cut -d' ' -f2 <<<"$on")
    [ -n "$at" ] && after=$(diff_s "$T_UNFENCE" "$at") || after=$(since "$T_UNFENCE")
    event "${GRN}$L's BMC powered it on${R} $after s after the unfence (chassis.log: on $(cut -d' ' -f4- <<<"$on"); power-on.cmd started its daemon in the machine's cgroup)"
    rejoined() {
      [ "$(rest_code "$L" /replica)" = 200 ] &&
      [ "$(psql_ "$L" "SELECT status FROM pg_stat_wal_receiver")" = streaming ]
    }
    if watch_until 120 rejoined; then
      how="restarted as a replica"
      tail -c +"$((LOGSIZE + 1))" "${DIR[$L]}/pgwarden.log" | grep -qi 'rewound\|pg_rewind' && how="rewound with pg_rewind"
      tail -c +"$((LOGSIZE + 1))" "${DIR[$L]}/pgwarden.log" | grep -qi 're-clon\|pg_basebackup' && how="re-cloned"
      event "${GRN}$L rejoined as a replica of $N${R} $(since "$T_UNFENCE") s after the unfence ($how); it has $(psql_ "$L" 'SELECT count(*) FROM demo') rows, the new one included"
    else
      event "${YEL}$L has not rejoined as a streaming replica within 120 s${R} - see ${DIR[$L]}/pgwarden.log"
    fi
  fi
else
  event "${YEL}no unfence: there is no new leader to ask${R} ($L stays as it is)"
fi
event "that's the demo: the table stays live; press ${B}Ctrl-C${R} to stop everything"
watch_until 100000000
