#!/bin/bash
# test_watchdog_vm.sh - the watchdog driver (watchdog/watchdog.c) against a real kernel
# driver: Debian's kernel with i6300esb in a small qemu VM (TCG unless real KVM),
# where a missed keepalive really powers the VM off.
#
#   tests/vm/test_watchdog_vm.sh [lease] [magic]        (as root; default: both)
#
# lease: wdvm arms with W = TTL - S, pets after each simulated successful renewal
#        (the daemon's keepalive-window rule), then the renewals fail.  Pass: qemu
#        exits 0 (-action watchdog=poweroff), and the host-measured time from the last
#        keepalive line to qemu's exit is >= W and before the simulated lease expiry
#        D = t_send + TTL (also before D - R, ARCHITECTURE.md section 4 rule 3).
# magic: wdvm arms, pets, stops it with pgw_wd_close() (DISABLECARD, 'V', close) and
#        stays alive 3 * W.  Pass: qemu exits 65 (isa-debug-exit from /init).
#
# The kernel is the one Debian's linux-image-amd64 depends on, fetched with
# apt-get download and cached (vmlinuz, the PVH vmlinux extracted from it, and the
# few modules needed) under $PGW_VM_CACHE (/var/cache/pgwarden-test), so only the
# first run downloads.  Work files and serial logs go to $PGW_VM_WORK (build/vm).
# Settings: TTL (10), MARGIN (5), RENEWALS (6), LATENCY_MS (200), MAGIC_TIMEOUT (5),
# ACCEL (kvm only when /dev/kvm is writable and the CPU has vmx/svm, else tcg),
# VM_TIMEOUT (120 s per VM).  Exit status 0 when every scenario passed.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
if [ "$(id -u)" != 0 ]; then
	echo "test_watchdog_vm.sh: run as root (apt-get download, mknod, qemu)" >&2
	exit 2
fi
scripts/install-deps.sh vm

CACHE=${PGW_VM_CACHE:-/var/cache/pgwarden-test}
WORK=${PGW_VM_WORK:-$top/build/vm}
TTL=${TTL:-10} MARGIN=${MARGIN:-5} RENEWALS=${RENEWALS:-6} LATENCY_MS=${LATENCY_MS:-200}
MAGIC_TIMEOUT=${MAGIC_TIMEOUT:-5} VM_TIMEOUT=${VM_TIMEOUT:-120}
R=1 # reset allowance, s (PGW_RESET_ALLOWANCE_MS)
MODULES="watchdog/watchdog watchdog/i6300esb misc/pvpanic/pvpanic misc/pvpanic/pvpanic-mmio"
scenarios=${*:-lease magic}
t_start=$(date +%s.%N)
mkdir -p "$WORK/logs"

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# kernel_package, extract_vmlinux
. "$top/tests/lib/kernel.sh"

# Sets KDIR (vmlinuz, maybe vmlinux, modules/, version) from the cache, filling it once.
fetch_kernel() {
	local pkg kver tmp src m
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then
		apt-get update -q >/dev/null
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || { echo "cannot tell which kernel linux-image-amd64 depends on" >&2; exit 1; }
	KDIR=$CACHE/$pkg
	[ -f "$KDIR/version" ] && return 0
	echo "fetching $pkg into $CACHE (once)"
	kver=${pkg#linux-image-}
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
	dpkg -x "$tmp/$pkg"_*.deb "$tmp/root"
	mkdir -p "$tmp/kernel/modules"
	cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/kernel/vmlinuz"
	extract_vmlinux "$tmp/kernel/vmlinuz" "$tmp/kernel/vmlinux" || {
		echo "note: no PVH vmlinux could be extracted; booting the bzImage (slower)"
		rm -f "$tmp/kernel/vmlinux"
	}
	for m in $MODULES; do
		src=$(compgen -G "$tmp/root/*lib/modules/$kver/kernel/drivers/$m.ko*" | head -1) || true
		[ -n "$src" ] || { echo "$m.ko is not in $pkg" >&2; exit 1; }
		mkdir -p "$tmp/kernel/modules/$(dirname "$m")"
		case "$src" in # busybox insmod wants them plain
		*.xz) xz -dc "$src" ;;
		*.zst) zstd -dc "$src" ;;
		*) cat "$src" ;;
		esac >"$tmp/kernel/modules/$m.ko"
	done
	echo "$kver" >"$tmp/kernel/version"
	rm -rf "$KDIR"
	mv "$tmp/kernel" "$KDIR"
	rm -rf "$tmp"
}

build_wdvm() {
	gcc -static -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Icore \
		-o "$WORK/wdvm" tests/vm/wdvm.c watchdog/watchdog.c core/lease.c
}

build_initramfs() {
	local stage kver m a
	kver=$(cat "$KDIR/version")
	stage=$(mktemp -d)
	mkdir -p "$stage"/{bin,dev,proc,sys,tmp}
	if ldd /bin/busybox >/dev/null 2>&1; then
		echo "/bin/busybox is not static (busybox-static)" >&2
		exit 1
	fi
	cp /bin/busybox "$stage/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$stage/bin/$a" ] || ln -s busybox "$stage/bin/$a"
	done
	install -m 0755 tests/vm/init "$stage/init"
	install -m 0755 "$WORK/wdvm" "$stage/bin/wdvm"
	mknod -m 600 "$stage/dev/console" c 5 1
	for m in $MODULES; do
		mkdir -p "$stage/lib/modules/$kver/kernel/drivers/$(dirname "$m")"
		cp "$KDIR/modules/$m.ko" "$stage/lib/modules/$kver/kernel/drivers/$m.ko"
	done
	(cd "$stage" && find . -print0 | sort -z | /bin/busybox cpio -o -H newc -0 -R 0:0 2>/dev/null) |
		gzip -1 >"$WORK/initrd.gz"
	rm -rf "$stage"
}

# run_vm NAME KERNEL-ARGS: boots once; every serial line gets the host's seconds since
# qemu started.  Sets RC (qemu's status), LOG, T_EXIT (s) and T_INIT (s, /init started).
run_vm() {
	local t0 t1
	LOG=$WORK/logs/$1.log
	t0=$(date +%s.%N)
	set +e
	timeout -s KILL "$VM_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -m 256 -smp 1 \
		-nographic -no-reboot -nic none -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
		-append "console=ttyS0 quiet panic=-1 $2" \
		-device i6300esb -action watchdog=poweroff \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-device pvpanic -action panic=exit-failure </dev/null 2>&1 |
		T0=$t0 perl -MTime::HiRes=time -ne \
			'BEGIN { $| = 1 } s/\r//g; printf "%8.3f %s", time - $ENV{T0}, $_' >"$LOG"
	RC=${PIPESTATUS[0]}
	set -e
	t1=$(date +%s.%N)
	T_EXIT=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	printf '%8.3f QEMU-EXIT status=%s\n' "$T_EXIT" "$RC" >>"$LOG"
	T_INIT=$(awk '/INIT-START/ { print $1; exit }' "$LOG")
	sed 's/^/    /' "$LOG"
}

field() { sed -n "s/.*$1 .*$2=\([-0-9.]*\).*/\1/p" "$LOG" | tail -1; }

failed=0 results=()
result() { # result NAME PASS|FAIL TEXT...
	local name=$1 verdict=$2
	shift 2
	results+=("$name: $verdict $*")
	echo "$name: $verdict $*"
	[ "$verdict" = PASS ] || failed=1
}

run_lease() {
	local w hk until_d dt ok=PASS why=""
	run_vm lease "wdvm=lease wdargs=ttl=$TTL,margin=$MARGIN,renewals=$RENEWALS,latency_ms=$LATENCY_MS"
	w=$(field ARMED W)
	until_d=$(field LAST-KEEPALIVE until_D)
	hk=$(awk '/ KEEPALIVE [0-9]+ / { t = $1 } END { print t }' "$LOG")
	if [ -z "$w" ] || [ -z "$until_d" ] || [ -z "$hk" ]; then
		result lease FAIL "(qemu status $RC): the guest did not arm and pet (see $LOG)"
		return
	fi
	dt=$(awk -v a="$hk" -v b="$T_EXIT" 'BEGIN { printf "%.3f", b - a }')
	[ "$RC" = 0 ] || { ok=FAIL; why="$why; qemu status $RC, not 0 (watchdog poweroff)"; }
	grep -q "RENEWAL-FAILED" "$LOG" || { ok=FAIL; why="$why; the guest never went on without pets"; }
	grep -q "NO-RESET" "$LOG" && { ok=FAIL; why="$why; no reset"; }
	awk -v d="$dt" -v w="$w" 'BEGIN { exit !(d >= w) }' || { ok=FAIL; why="$why; fired before W"; }
	awk -v d="$dt" -v u="$until_d" 'BEGIN { exit !(d < u) }' ||
		{ ok=FAIL; why="$why; reset came after the lease expiry D"; }
	awk -v d="$dt" -v u="$until_d" -v r="$R" 'BEGIN { exit !(d < u - r) }' ||
		{ ok=FAIL; why="$why; reset came after D - R"; }
	result lease "$ok" "qemu status $RC; TTL $TTL s, S $MARGIN s, W $w s;" \
		"last keepalive -> qemu exit $dt s (>= W $w s; < D $until_d s; < D - R $(awk -v u="$until_d" -v r="$R" 'BEGIN { printf "%.3f", u - r }') s);" \
		"boot to /init ${T_INIT:-?} s; VM run $T_EXIT s${why:+ -- FAILED:${why#;}}"
}

run_magic() {
	local ok=PASS why=""
	run_vm magic "wdvm=magic wdargs=timeout=$MAGIC_TIMEOUT,pets=3"
	[ "$RC" = 65 ] || { ok=FAIL; why="$why; qemu status $RC, not 65 (normal end)"; }
	grep -q "MAGIC-OK" "$LOG" || { ok=FAIL; why="$why; the guest did not outlive 3 * W"; }
	result magic "$ok" "qemu status $RC; W $(field ARMED W) s, alive 3 * W after the magic close;" \
		"boot to /init ${T_INIT:-?} s; VM run $T_EXIT s${why:+ -- FAILED:${why#;}}"
}

if [ -z "${ACCEL:-}" ]; then
	# /dev/kvm alone is not enough: a software-only KVM (no vmx/svm) cannot boot it
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
fi
t=$(date +%s.%N)
fetch_kernel
echo "kernel: $(cat "$KDIR/version") from $KDIR ($(since "$t") s)"
KERNEL=$KDIR/vmlinuz
[ -f "$KDIR/vmlinux" ] && KERNEL=$KDIR/vmlinux
build_wdvm
build_initramfs
echo "initramfs: $WORK/initrd.gz ($(du -h "$WORK/initrd.gz" | cut -f1)); qemu -accel $ACCEL; kernel $(basename "$KERNEL")"

for s in $scenarios; do
	case $s in
	lease) run_lease ;;
	magic) run_magic ;;
	*) echo "unknown scenario $s (lease, magic)" >&2; exit 2 ;;
	esac
done
echo "=== summary"
printf '%s\n' "${results[@]}"
echo "total run time $(since "$t_start") s"
exit $failed
