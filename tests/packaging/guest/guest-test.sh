#!/bin/sh
# guest-test.sh - the appliance test inside the VM (run as root by pgw-appliance-run from
# the payload disk, which also carries pgwarden_*.deb and VERSION).  Prints one line per
# check (PGW-PASS name / PGW-FAIL name, with the evidence indented under a failure),
# PGW-FIGURE lines (seconds) and at the end "appliance: N passed, N failed".
P=/mnt/payload
VERSION=$(cat $P/VERSION)
DATA=/var/lib/postgresql/15/pgwarden
CONF=/etc/pgwarden/pgwarden.yml
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 SYSTEMD_PAGER='' SYSTEMD_COLORS=0
pass=0 fail=0
OUT=/run/pgw-check.out

now() { cut -d' ' -f1 /proc/uptime; }
dt() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ok() {
	echo "PGW-PASS $1"
	pass=$((pass + 1))
}
bad() {
	echo "PGW-FAIL $1"
	fail=$((fail + 1))
	[ -s $OUT ] && sed 's/^/    | /' $OUT | head -40
}
# check NAME CMD...: CMD's status decides; its output is shown on failure
check() {
	name=$1
	shift
	if "$@" >$OUT 2>&1; then ok "$name"; else bad "$name"; fi
}
# expect NAME WANT CMD...: CMD's output (one line, trimmed) must be WANT
expect() {
	name=$1 want=$2
	shift 2
	got=$("$@" 2>&1 | tr '\n' ' ' | sed 's/ *$//')
	if [ "$got" = "$want" ]; then ok "$name ($got)"; else echo "wanted \"$want\", got \"$got\"" >$OUT && bad "$name"; fi
}
fig() { echo "PGW-FIGURE $*"; }
show() { sed 's/^/    /'; }
unit_pid() { systemctl show -p MainPID --value pgwarden; }
absent() { for f in "$@"; do [ ! -e "$f" ] || { echo "still there: $f"; return 1; }; done; }
no_postgres() { ! pgrep -u postgres -a postgres; }
status_primary() { systemctl show -p StatusText --value pgwarden | grep -q '^primary holding the leader key'; }
leader_key() { # the value of /service/main/leader in etcd (v3 JSON API), empty when none
	curl -s -X POST http://127.0.0.1:2379/v3/kv/range \
		-d "{\"key\": \"$(printf /service/main/leader | base64)\"}" |
		sed -n 's/.*"value":"\([^"]*\)".*/\1/p' | base64 -d 2>/dev/null
}
wait_for() { # wait_for SECONDS CMD...
	w=$1
	shift
	t=$(now)
	while ! "$@" >/dev/null 2>&1; do
		[ "$(dt "$t" | cut -d. -f1)" -ge "$w" ] && return 1
		sleep 1
	done
}

echo "PGW-START version $VERSION, kernel $(uname -r), $(nproc) vCPU"
udevadm settle -t 30
ls -l /dev/watchdog /dev/watchdog0 2>&1 | show

# ---------------------------------------------------------------- install
t=$(now)
cp $P/pgwarden_"$VERSION"_*.deb /root/
check "apt-get install ./pgwarden_$VERSION.deb (offline)" apt-get install -y -q /root/pgwarden_"$VERSION"_amd64.deb
fig install "$(dt "$t")"
udevadm settle -t 10
expect "installing enables nothing" disabled systemctl is-enabled pgwarden
expect "installing starts nothing" inactive systemctl is-active pgwarden
check "no PostgreSQL was started" no_postgres
expect "pgwarden --version" "pgwarden $VERSION" pgwarden --version
expect "pgwardenctl version" "pgwardenctl $VERSION" pgwardenctl version
expect "conffile $CONF mode/owner" "640 root postgres" stat -c '%a %U %G' $CONF
expect "/etc/pgwarden/fencing.secret mode/owner" "600 postgres postgres" stat -c '%a %U %G' /etc/pgwarden/fencing.secret
expect "/var/lib/pgwarden (tmpfiles.d)" "750 postgres postgres" stat -c '%a %U %G' /var/lib/pgwarden
check "group pgwarden (sysusers.d)" getent group pgwarden
expect "/dev/watchdog for the group pgwarden (udev rule)" "660 root pgwarden" stat -c '%a %U %G' /dev/watchdog
check "man pages installed" ls /usr/share/man/man8/pgwarden.8.gz /usr/share/man/man8/pgwardenctl.8.gz /usr/share/man/man5/pgwarden.yml.5.gz
check "bash completion installed" bash -c '. /usr/share/bash-completion/completions/pgwardenctl && complete -p pgwardenctl'
check "packaged configuration is valid" pgwarden --check-config $CONF
systemd-analyze verify pgwarden.service >$OUT 2>&1
if [ $? = 0 ] && [ ! -s $OUT ]; then ok "systemd-analyze verify pgwarden.service: clean"; else bad "systemd-analyze verify pgwarden.service"; fi
sec=$(systemd-analyze security pgwarden.service 2>/dev/null | sed -n 's/.*Overall exposure level for pgwarden.service: \([0-9.]*\).*/\1/p')
fig security_exposure "$sec"
check "systemd-analyze security: exposure $sec <= 2.0" awk -v e="${sec:-9}" 'BEGIN { exit !(e <= 2.0) }'
echo "pgwarden --list-watchdogs:"
pgwarden --list-watchdogs 2>&1 | show

# ---------------------------------------------------------------- start
# The packaged configuration as shipped (watchdog off): bootstrap a one-node cluster.
# (The watchdog is switched on below, for a restart: pgwarden arms it before it takes the
# leader key, and initdb under TCG takes longer than the watchdog's timeout.)
t=$(now)
check "systemctl start etcd pgwarden" systemctl start etcd pgwarden
fig start "$(dt "$t")"
expect "pgwarden.service is active" active systemctl is-active pgwarden
wait_for 240 status_primary
fig primary_after_start "$(dt "$t")"
check "status line says primary holding the leader key" status_primary
expect "REST GET /primary" 200 curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8008/primary
expect "PostgreSQL accepts writes (psql over /run/postgresql)" "f 1" runuser -u postgres -- psql -h /var/run/postgresql -qAtc \
	"select pg_is_in_recovery(); create table appliance(x int); insert into appliance values (1); select count(*) from appliance"

# watchdog.mode required, then a restart: a clean stop and a start as leader with the
# i6300esb armed (-action watchdog=poweroff: a missed pet ends the VM)
sed -i 's/^  mode: automatic$/  mode: required/' $CONF
check "watchdog.mode required set" grep -q '^  mode: required$' $CONF
t=$(now)
check "systemctl restart pgwarden" systemctl restart pgwarden
wait_for 120 status_primary
fig restart_to_primary "$(dt "$t")"
check "primary again after the restart" status_primary
echo "systemctl status pgwarden:"
systemctl status pgwarden --no-pager -l -n 0 2>&1 | show
check "systemctl status shows the role" sh -c 'systemctl status pgwarden --no-pager -n 0 | grep "Status: \"primary holding the leader key"'
pid=$(unit_pid)
expect "pgwarden runs as postgres" postgres ps -o user= -p "$pid"
expect "pgwarden has no capabilities" "CapEff 0000000000000000" awk '/^CapEff/ { print "CapEff", $2 }' /proc/"$pid"/status
expect "pgwarden's supplementary groups include pgwarden" yes sh -c "id -nG postgres >/dev/null; for g in \$(sed -n 's/^Groups://p' /proc/$pid/status); do getent group \$g; done | grep -q '^pgwarden:' && echo yes"
check "pgwarden holds the watchdog open (DeviceAllow, udev group)" sh -c "ls -l /proc/$pid/fd | grep -E '/dev/watchdog'"
expect "the watchdog is armed (leader)" active cat /sys/class/watchdog/watchdog0/state
pm=$(head -1 $DATA/postmaster.pid 2>/dev/null)
check "the postmaster ($pm) is in pgwarden.service's cgroup" grep -qx "$pm" /sys/fs/cgroup/system.slice/pgwarden.service/cgroup.procs
expect "the row written before the restart is there" "f 1" runuser -u postgres -- psql -h /var/run/postgresql -qAtc \
	"select pg_is_in_recovery(); select count(*) from appliance"
check "pgwardenctl list shows node1 as Leader" sh -c 'pgwardenctl list | tee /dev/stderr | grep -E "node1 .*Leader"'
expect "the leader key is node1's" node1 leader_key
check "the journal has pgwarden's records" sh -c 'journalctl -u pgwarden -o cat --no-pager | grep -E "node1 INFO: pgwarden '"$VERSION"': member node1 of cluster main"'
check "journal records are structured (unit, identifier, priority, pid)" sh -c \
	'journalctl -u pgwarden -o json --no-pager | grep "\"_SYSTEMD_UNIT\":\"pgwarden.service\"" | grep "\"SYSLOG_IDENTIFIER\":\"pgwarden\"" | grep "\"PRIORITY\":\"[0-7]\"" | grep -q "\"_PID\":\"'"$pid"'\""'
echo "one record, journalctl -o verbose:"
journalctl -u pgwarden -o verbose -n 1 --no-pager 2>&1 | grep -E '^ *(PRIORITY|SYSLOG_IDENTIFIER|_SYSTEMD_UNIT|_PID|_UID|MESSAGE)=' | show
check "no sandbox denials in the journal" sh -c '! journalctl -u pgwarden --no-pager | grep -iE "permission denied|operation not permitted|read-only file system"'
check "no WatchdogSec warning from pgwarden" sh -c '! journalctl -u pgwarden --no-pager | grep -F "WatchdogSec="'
t=$(now)
check "systemctl reload pgwarden (SIGHUP)" systemctl reload pgwarden
sleep 1
expect "still active after reload" active systemctl is-active pgwarden
echo "journal of pgwarden so far:"
journalctl -u pgwarden -o cat --no-pager 2>&1 | tail -25 | show

# ---------------------------------------------------------------- stop
t=$(now)
check "systemctl stop pgwarden" systemctl stop pgwarden
fig stop "$(dt "$t")"
expect "unit result after stop" "success 0" sh -c 'echo $(systemctl show -p Result --value pgwarden) $(systemctl show -p ExecMainStatus --value pgwarden)'
check "no PostgreSQL process left" no_postgres
expect "PostgreSQL was shut down cleanly (pg_controldata)" "shut down" sh -c \
	"/usr/lib/postgresql/15/bin/pg_controldata $DATA | sed -n 's/^Database cluster state: *//p'"
check "nothing was SIGKILLed" sh -c '! journalctl -u pgwarden --no-pager | grep -iE "killing process|SIGKILL|timed out"'
expect "the leader key was released" "" leader_key
expect "the watchdog was disarmed (magic close)" inactive cat /sys/class/watchdog/watchdog0/state
journalctl -u pgwarden -o cat --no-pager 2>&1 | tail -6 | show

# ---------------------------------------------------------------- purge
t=$(now)
check "apt-get purge pgwarden" apt-get purge -y -q pgwarden
fig purge "$(dt "$t")"
check "dpkg: pgwarden is gone" sh -c '! dpkg -s pgwarden'
check "purge removed programs, units, rules, config, state" absent /usr/bin/pgwarden /usr/bin/pgwardenctl \
	/lib/systemd/system/pgwarden.service /lib/udev/rules.d/60-pgwarden-watchdog.rules \
	/usr/lib/tmpfiles.d/pgwarden.conf /usr/lib/sysusers.d/pgwarden.conf /etc/pgwarden /var/lib/pgwarden \
	/usr/share/bash-completion/completions/pgwardenctl /usr/share/doc/pgwarden /usr/share/man/man8/pgwarden.8.gz \
	/etc/systemd/system/multi-user.target.wants/pgwarden.service
check "purge kept the data directory" test -f $DATA/PG_VERSION
check "systemd no longer knows pgwarden.service" sh -c '! systemctl cat pgwarden.service'
expect "/dev/watchdog back to its default permissions" "600 root root" stat -c '%a %U %G' /dev/watchdog
echo "files named *pgwarden* left on the root file system:"
find / -xdev -name '*pgwarden*' 2>/dev/null | show

echo "appliance: $pass passed, $fail failed"
[ "$fail" = 0 ]
