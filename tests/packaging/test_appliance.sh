#!/bin/bash
# test_appliance.sh [VERSION] - the appliance test: the built .deb in a real Debian 12
# system with systemd, PostgreSQL 15, etcd and an emulated Intel 6300ESB watchdog.
#
# A qemu VM (TCG unless real KVM; -nic none) boots Debian's kernel (PVH vmlinux) with a
# small initramfs that mounts a debootstrap'ed root image read-write as a snapshot (the
# cached image is never changed).  A second disk carries the .deb and guest/guest-test.sh,
# which pgw-appliance.service (baked into the image) runs at boot: install with apt-get
# (offline), `systemctl start etcd pgwarden` (a one-node cluster, watchdog required),
# the status line, the journal, `systemctl stop pgwarden` (a clean PostgreSQL shutdown),
# `apt-get purge pgwarden` (everything gone but the data directory).  Results come back
# over the serial console; every line is stamped with the host's seconds since qemu
# started.
#
# Cached under $PGW_VM_CACHE (/var/cache/pgwarden-test): the kernel and modules, and the
# root image (built from nothing with debootstrap when missing: about 2 minutes).
# Work files and the serial log: $PGW_PKGTEST_WORK (build/pkgtest).  Settings: ACCEL,
# VM_TIMEOUT (900 s), VM_MEM (2048 MiB), VM_CPUS (2).  Run as root.  Exit 0 when every
# check passed; the last line is "appliance: N passed, N failed".
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
here=tests/packaging
VERSION=${1:-$(sed -n 's/^VERSION *:= *//p' Makefile)}
if [ "$(id -u)" != 0 ]; then
	echo "test_appliance.sh: run as root (debootstrap, chroot, mknod, qemu)" >&2
	exit 2
fi
scripts/install-deps.sh package
# shellcheck source=tests/packaging/lib-image.sh
. $here/lib-image.sh
WORK=${PGW_PKGTEST_WORK:-$top/build/pkgtest}
VM_TIMEOUT=${VM_TIMEOUT:-900} VM_MEM=${VM_MEM:-2048} VM_CPUS=${VM_CPUS:-2}
t_start=$(ts)
mkdir -p "$WORK"

deb=build/pkg/pgwarden_${VERSION}_amd64.deb
[ -f "$deb" ] || { echo "test_appliance.sh: $deb is missing (make deb)" >&2; exit 2; }

appliance_kernel
appliance_rootfs "$deb"
echo "appliance: kernel $(cat "$AK/version"), root image $AR/rootfs.img"

# initramfs: busybox, the modules, /init
t=$(ts)
stage=$(mktemp -d)
mkdir -p "$stage"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$stage/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$stage/bin/$a" ] || ln -s busybox "$stage/bin/$a"; done
install -m 0755 $here/guest/initramfs-init "$stage/init"
cp "$AK"/modules/*.ko "$stage/modules/"
cp "$AK/modules.order" "$stage/modules.order"
mknod -m 600 "$stage/dev/console" c 5 1
(cd "$stage" && find . -print0 | sort -z | /bin/busybox cpio -o -H newc -0 -R 0:0 2>/dev/null) |
	gzip -1 >"$WORK/appliance-initrd.gz"
rm -rf "$stage"

# payload disk: the .deb, the guest test, the version
payload=$(mktemp -d)
cp "$deb" "$payload/"
install -m 0755 $here/guest/guest-test.sh "$payload/guest-test.sh"
echo "$VERSION" >"$payload/VERSION"
rm -f "$WORK/appliance-payload.img"
mkfs.ext4 -q -F -L pgw-payload -d "$payload" "$WORK/appliance-payload.img" 64M >/dev/null 2>&1
rm -rf "$payload"
echo "appliance: initramfs and payload disk ready ($(since "$t") s)"

if [ -z "${ACCEL:-}" ]; then
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
fi
KERNEL=$AK/vmlinuz
[ -f "$AK/vmlinux" ] && KERNEL=$AK/vmlinux
LOG=$WORK/appliance-serial.log
echo "appliance: booting (qemu -accel $ACCEL, $VM_CPUS vCPU, $VM_MEM MiB, $(basename "$KERNEL")); serial log $LOG"
t0=$(ts)
set +e
# snapshot=on: the guest's writes go to a temporary overlay, the cached image stays as is
TMPDIR=$WORK timeout -s KILL "$VM_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -m "$VM_MEM" -smp "$VM_CPUS" \
	-nographic -no-reboot -nic none -kernel "$KERNEL" -initrd "$WORK/appliance-initrd.gz" \
	-append "console=ttyS0 quiet panic=-1 systemd.show_status=0 rd.udev.log_level=3" \
	-drive file="$AR/rootfs.img",format=raw,if=virtio,snapshot=on \
	-drive file="$WORK/appliance-payload.img",format=raw,if=virtio,readonly=on \
	-device i6300esb -action watchdog=poweroff </dev/null 2>&1 |
	T0=$t0 perl -MTime::HiRes=time -ne \
		'BEGIN { $| = 1 } s/\r//g; s/\e\[[0-9;?]*[A-Za-z]//g; s/\ec//g; printf "%8.3f %s", time - $ENV{T0}, $_' |
	tee "$LOG" | grep --line-buffered -E 'PGW-|APPLIANCE-|INITRAMFS-|appliance:'
rc=${PIPESTATUS[0]}
set -e
t_vm=$(since "$t0")
echo "appliance: qemu exited with status $rc after $t_vm s"

passed=$(grep -c ' PGW-PASS ' "$LOG" || true)
failed=$(grep -c ' PGW-FAIL ' "$LOG" || true)
boot=$(awk '/APPLIANCE-BOOTED/ { print $1; exit }' "$LOG")
echo "=== figures (s)"
echo "host: boot to the test unit ${boot:-?}; whole VM run $t_vm; whole test $(since "$t_start")"
sed -n 's/^ *\([0-9.]*\) PGW-FIGURE \(.*\)/guest: \2/p' "$LOG"
if ! grep -q 'appliance: [0-9]* passed, [0-9]* failed' "$LOG"; then
	echo "test_appliance.sh: the guest test did not finish (qemu status $rc; a watchdog reset or a hang?); see $LOG" >&2
	failed=$((failed + 1))
fi
[ "$rc" = 0 ] || { echo "test_appliance.sh: qemu status $rc (124/137: timeout)" >&2; }
echo "appliance: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$rc" = 0 ]
