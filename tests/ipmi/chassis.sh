#!/bin/bash
# chassis.sh NODEDIR get PARM...          -> "PARM:VALUE" lines (ipmi_sim reads them)
# chassis.sh NODEDIR set PARM VAL [...]   -> nothing; exit 0 on success (else cc 0xff)
# chassis.sh NODEDIR delayed-off          -> (internal) cut the power OFF_DELAY_MS from now
#
# The chassis_control program of one simulated BMC (tests/integration/bmc.py starts
# ipmi_sim with it).  The "server" is a cgroup v2 directory: power is on while the cgroup
# has processes; power off writes 1 to its cgroup.kill (which also kills frozen processes
# and processes that left their process group: pg_ctl's postmaster, daemons); power on
# thaws it and runs NODEDIR/power-on.cmd inside it (when there is none, nothing starts
# and the event is logged as "requested", for a test callback to act on).
#
# NODEDIR/bmc.conf (sourced): CGROUP=<cgroup v2 dir>  OFF_DELAY_MS=<n>  (0: the node is
# dead before the reply, as with ipmi_sim's sync mode; n > 0: the reply comes at once and
# the power goes off n ms later, like real BMCs, so clients must poll the status).
#
# Every call appends one line to NODEDIR/chassis.log:
#     <CLOCK_MONOTONIC s|-> <CLOCK_REALTIME s> <event> <result> [key=value...]
# event: status, off, off-done (delayed), on, reset, soft.  The monotonic time comes from
# /proc/timer_list ("now at N nsecs", root only); "-" when that cannot be read.
#
# ipmi_sim blocks until this program exits, and runs the command again if that takes
# >= 1 s, so it stays fast: no forks for a status read.  ipmi_sim reads our stdout to
# EOF: nothing started in the background may keep it open.  Children inherit ipmi_sim's
# UDP socket and epoll descriptor: everything started here closes descriptors > 2 first.
dir=$1
op=$2
shift 2
CGROUP=
OFF_DELAY_MS=0
# shellcheck disable=SC1091
[ -r "$dir/bmc.conf" ] && . "$dir/bmc.conf"
log=$dir/chassis.log

stamp() {
	local ns
	MONO=-
	if { read -r _ && read -r _ && read -r _ _ ns _; } 2>/dev/null </proc/timer_list &&
		[[ $ns =~ ^[0-9]+$ ]]; then
		printf -v MONO '%d.%09d' $((ns / 1000000000)) $((ns % 1000000000))
	fi
}

event() { # event result [key=value...]
	stamp
	echo "$MONO $EPOCHREALTIME $*" >>"$log"
}

populated() {
	local k v
	[ -n "$CGROUP" ] || return 1
	while read -r k v; do
		[ "$k" = populated ] && { [ "$v" = 1 ]; return; }
	done 2>/dev/null <"$CGROUP/cgroup.events"
	return 1
}

close_fds() {
	local fd
	for fd in "/proc/$BASHPID"/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
	done
}

ms_since() { # start (EPOCHREALTIME) -> MS, milliseconds since then
	local a=${1/./} b=${EPOCHREALTIME/./}
	MS=$(((10#$b - 10#$a) / 1000))
}

cut_power() { # kill every process of the node, wait until the cgroup is empty (<= 2 s)
	local t0=$EPOCHREALTIME procs=() i
	mapfile -t procs 2>/dev/null <"$CGROUP/cgroup.procs"
	echo 1 >"$CGROUP/cgroup.kill" 2>/dev/null
	for ((i = 0; i < 400; i++)); do
		populated || break
		sleep 0.005
	done
	ms_since "$t0"
	if populated; then
		event "$1" failed "procs=${#procs[@]}" "ms=$MS"
		return 1
	fi
	local pids
	printf -v pids '%s,' "${procs[@]}"
	event "$1" killed "procs=${#procs[@]}" "ms=$MS" "pids=${pids%,}"
}

power_off() {
	if ! populated; then
		event off already-off
		return 0
	fi
	if [ "${OFF_DELAY_MS:-0}" -gt 0 ]; then
		setsid "$0" "$dir" delayed-off </dev/null >/dev/null 2>&1 &
		event off accepted "delay_ms=$OFF_DELAY_MS"
		return 0
	fi
	cut_power off
}

power_on() {
	local t0=$EPOCHREALTIME i
	if populated; then
		event on already-on
		return 0
	fi
	if [ -z "$CGROUP" ]; then
		event on failed no-cgroup
		return 1
	fi
	mkdir -p "$CGROUP" 2>/dev/null
	echo 0 >"$CGROUP/cgroup.freeze" 2>/dev/null # a node left frozen boots thawed
	if [ ! -x "$dir/power-on.cmd" ]; then
		event on requested
		return 0
	fi
	# the launcher joins the cgroup, then becomes power-on.cmd (args: NODEDIR)
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"; done
		echo $$ > "$1/cgroup.procs" && echo $$ > "$2/power-on.pid" && exec "$2/power-on.cmd" "$2"' \
		power-on "$CGROUP" "$dir" </dev/null >>"$dir/power-on.log" 2>&1 &
	for ((i = 0; i < 200; i++)); do
		populated && break
		sleep 0.005
	done
	ms_since "$t0"
	if populated; then
		event on started "ms=$MS"
		return 0
	fi
	event on failed "ms=$MS"
	return 1
}

case $op in
get)
	for k in "$@"; do
		case $k in
		power)
			if populated; then
				echo "power:1"
				event status on
			else
				echo "power:0"
				event status off
			fi
			;;
		boot) echo "boot:default" ;;
		*) echo "$k:0" ;;
		esac
	done
	;;
set)
	while [ $# -ge 2 ]; do
		k=$1 v=$2
		shift 2
		case $k in
		power)
			if [ "$v" = 0 ]; then
				power_off || exit 1
			else
				power_on || exit 1
			fi
			;;
		reset)
			event reset start
			{ ! populated || cut_power reset; } && power_on || exit 1
			;;
		shutdown) # "soft": ACPI-like request, here SIGTERM to every process of the node
			n=0
			while read -r p; do
				kill -TERM "$p" 2>/dev/null && n=$((n + 1))
			done 2>/dev/null <"$CGROUP/cgroup.procs"
			event soft sent "procs=$n"
			;;
		identify) shift ;; # carries two values
		esac
	done
	;;
delayed-off)
	close_fds
	echo $$ >"$dir/offdelay.pid"
	printf -v secs '%d.%03d' $((OFF_DELAY_MS / 1000)) $((OFF_DELAY_MS % 1000))
	sleep "$secs"
	if populated; then cut_power off-done; else event off-done already-off; fi
	rm -f "$dir/offdelay.pid"
	;;
*) exit 1 ;;
esac
exit 0
