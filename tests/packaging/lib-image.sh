# lib-image.sh - sourced by tests/packaging/*.sh: the cached pieces of the appliance VM.
#
#   appliance_kernel    sets AK (dir): vmlinux or vmlinuz, version, modules/, modules.order
#   appliance_rootfs [DEB]   sets AR (dir): rootfs.img (ext4, raw) and rootfs.tar.zst; with
#                       DEB, the image also has what DEB depends on (first alternatives)
#
# Both live under $PGW_VM_CACHE (/var/cache/pgwarden-test), are built once and reused;
# the cache key of the root image is IMAGE_REV plus the package list, so a change to
# either builds a new image (old ones are removed).  Needs root (debootstrap, chroot,
# mount).  Mirror: $PGW_DEBIAN_MIRROR, else the first Debian URI in the host's apt
# sources, else http://deb.debian.org/debian.
# shellcheck shell=bash

CACHE=${PGW_VM_CACHE:-/var/cache/pgwarden-test}
SUITE=bookworm
IMAGE_REV=3
# What the appliance has before the test installs pgwarden: systemd as init, udev,
# PostgreSQL 15, etcd, and the libraries pgwarden's .deb depends on (so that the
# offline guest can install it with apt-get), curl for the REST checks.
IMAGE_PKGS="systemd systemd-sysv udev dbus kmod procps postgresql-15 postgresql-client-15
etcd-server libpq5 libcurl4 libjson-c5 libyaml-0-2 libmicrohttpd12 libgnutls30 libsystemd0
curl ca-certificates man-db"
# Modules the initramfs loads before it mounts the root (ext4 on virtio-blk) and the
# watchdog the appliance test uses; their dependencies are added from modules.dep.
KMODS="virtio_pci virtio_blk ext4 crc32c_generic i6300esb"

ts() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

debian_mirror() {
	if [ -n "${PGW_DEBIAN_MIRROR:-}" ]; then
		echo "$PGW_DEBIAN_MIRROR"
		return
	fi
	local m
	m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE '(https?://[^ ]+/debian)/?( |$)' | grep -v security | head -1 | tr -d ' ')
	echo "${m:-http://deb.debian.org/debian}"
}

# kernel_package, extract_vmlinux
. "$(dirname "${BASH_SOURCE[0]}")/../lib/kernel.sh"

appliance_kernel() {
	local pkg kver tmp m line t
	t=$(ts)
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then
		apt-get update -q >/dev/null
		pkg=$(kernel_package)
	fi
	[ -n "$pkg" ] || { echo "cannot tell which kernel linux-image-amd64 depends on" >&2; return 1; }
	AK=$CACHE/appliance-$pkg
	[ -f "$AK/modules.order" ] && return 0
	echo "appliance: fetching $pkg into $AK (once)"
	kver=${pkg#linux-image-}
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/.kfetch.XXXXXX")
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
	dpkg -x "$tmp/$pkg"_*.deb "$tmp/root"
	mkdir -p "$tmp/k/modules"
	cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/k/vmlinuz"
	extract_vmlinux "$tmp/k/vmlinuz" "$tmp/k/vmlinux" || rm -f "$tmp/k/vmlinux"
	# merged /usr or not: make lib/modules findable for depmod/modprobe -d
	[ -d "$tmp/root/lib/modules" ] || { mkdir -p "$tmp/root/lib" && ln -s ../usr/lib/modules "$tmp/root/lib/modules"; }
	depmod -b "$tmp/root" "$kver"
	# shellcheck disable=SC2086
	modprobe -d "$tmp/root" -S "$kver" --show-depends -a $KMODS >"$tmp/deps" || true
	: >"$tmp/k/modules.order"
	while read -r line; do
		case "$line" in
		insmod\ *) m=${line#insmod } m=${m%% *} ;;
		*) continue ;;
		esac
		local base
		base=$(basename "$m")
		base=${base%.xz} base=${base%.zst}
		grep -qx "$base" "$tmp/k/modules.order" && continue
		case "$m" in
		*.xz) xz -dc "$m" ;;
		*.zst) zstd -dc "$m" ;;
		*) cat "$m" ;;
		esac >"$tmp/k/modules/$base"
		echo "$base" >>"$tmp/k/modules.order"
	done <"$tmp/deps"
	echo "$kver" >"$tmp/k/version"
	rm -rf "$AK"
	mv "$tmp/k" "$AK"
	rm -rf "$tmp"
	echo "appliance: kernel $kver, modules: $(tr '\n' ' ' <"$AK/modules.order")($(since "$t") s)"
}

# The packages DEB depends on (the first of each set of alternatives), one line.
deb_depends() {
	dpkg-deb -f "$1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
		grep -v '^$' | sort -u | tr '\n' ' '
}

image_key() {
	printf '%s %s %s %s\n' "$IMAGE_REV" "$SUITE" "$IMAGE_PKGS $EXTRA_PKGS" "$(sha256sum "$(dirname "${BASH_SOURCE[0]}")/guest/pgw-appliance-run" | cut -c1-16)" |
		sha256sum | cut -c1-12
}

# The guest side that is baked into the image: a unit that, at boot, runs the test
# script from the second disk (/dev/vdb) and powers the VM off.
image_customise() {
	local r=$1 here
	here=$(dirname "${BASH_SOURCE[0]}")
	echo pgw-appliance >"$r/etc/hostname"
	printf '127.0.0.1 localhost\n127.0.1.1 pgw-appliance\n' >"$r/etc/hosts"
	printf '/dev/vda / ext4 rw,relatime 0 0\n' >"$r/etc/fstab"
	install -m 0755 "$here/guest/pgw-appliance-run" "$r/usr/local/sbin/pgw-appliance-run"
	cat >"$r/etc/systemd/system/pgw-appliance.service" <<'EOF'
[Unit]
Description=pgwarden appliance test (runs /dev/vdb's guest-test.sh, then powers off)
After=basic.target systemd-udev-settle.service
Wants=systemd-udev-settle.service
ConditionPathExists=/dev/vdb

[Service]
Type=exec
ExecStart=/usr/local/sbin/pgw-appliance-run
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no

[Install]
WantedBy=multi-user.target
EOF
	chroot "$r" systemctl enable pgw-appliance.service >/dev/null 2>&1
	chroot "$r" systemctl set-default multi-user.target >/dev/null 2>&1
	# nothing else on the console, nothing that waits for a network or runs jobs
	chroot "$r" systemctl mask serial-getty@ttyS0.service getty@tty1.service \
		apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
		systemd-networkd-wait-online.service >/dev/null 2>&1 || true
	# the test starts these itself
	chroot "$r" systemctl disable etcd.service postgresql.service >/dev/null 2>&1 || true
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' >"$r/etc/systemd/journald.conf.d/appliance.conf"
	passwd -R "$r" -d root >/dev/null 2>&1 || true
}

appliance_rootfs() {
	local key mirror t tmp r
	EXTRA_PKGS=""
	[ -n "${1:-}" ] && EXTRA_PKGS=$(deb_depends "$1")
	key=$(image_key)
	AR=$CACHE/appliance-rootfs-$key
	[ -f "$AR/rootfs.img" ] && [ -f "$AR/rootfs.tar.zst" ] && return 0
	t=$(ts)
	mirror=$(debian_mirror)
	echo "appliance: building the Debian $SUITE root image $AR from $mirror (once; a few minutes)"
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/.rootfs.XXXXXX")
	r=$tmp/root
	if ! build_rootfs "$tmp" "$r" "$mirror" "$t"; then
		unmount_under "$r"
		rm -rf --one-file-system "$tmp"
		return 1
	fi
	unmount_under "$r"
	mkdir -p "$tmp/out"
	tar -C "$r" --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 -o "$tmp/out/rootfs.tar.zst"
	# 3 GiB sparse: the root uses well under 1 GiB; PostgreSQL's cluster and WAL the rest
	mkfs.ext4 -q -F -L pgw-root -d "$r" "$tmp/out/rootfs.img" 3G
	rm -rf "$CACHE"/appliance-rootfs-*
	mv "$tmp/out" "$AR"
	rm -rf --one-file-system "$tmp"
	echo "appliance: root image $AR/rootfs.img ($(du -h "$AR/rootfs.img" | cut -f1) used) in $(since "$t") s"
}

# Everything mounted under $1, deepest first.
unmount_under() {
	local m
	for m in $(awk -v r="$1/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
}

# build_rootfs TMP ROOT MIRROR T0: debootstrap, packages, customisation.  The chroot gets
# its own proc and a tmpfs /dev with a few nodes (never the host's /dev: nothing under
# ROOT may lead back into the host's device tree when it is removed).
build_rootfs() {
	local tmp=$1 r=$2 mirror=$3 t=$4 n
	debootstrap --variant=minbase --include=systemd-sysv,udev "$SUITE" "$r" "$mirror" \
		>"$tmp/debootstrap.log" 2>&1 || {
		tail -20 "$tmp/debootstrap.log" >&2
		return 1
	}
	echo "appliance: debootstrap done ($(since "$t") s)"
	{
		echo "deb $mirror $SUITE main"
		echo "deb $mirror $SUITE-updates main"
		echo "deb ${mirror%/debian}/debian-security $SUITE-security main"
	} >"$r/etc/apt/sources.list"
	mkdir -p "$r/etc/postgresql-common"
	echo 'create_main_cluster = false' >"$r/etc/postgresql-common/createcluster.conf"
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 0755 "$r/usr/sbin/policy-rc.d"
	mount -t proc proc "$r/proc"
	mount -t tmpfs -o mode=0755,size=16m pgwdev "$r/dev"
	for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
		# shellcheck disable=SC2086
		set -- $n
		mknod -m 0666 "$r/dev/$1" c "$2" "$3"
	done
	mkdir -p "$r/dev/pts" "$r/dev/shm"
	cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
	# shellcheck disable=SC2086,SC2046
	if ! chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 sh -c \
		"apt-get update -q && apt-get install -y -q --no-install-recommends $(echo $IMAGE_PKGS $EXTRA_PKGS)" \
		>"$tmp/apt.log" 2>&1; then
		tail -30 "$tmp/apt.log" >&2
		return 1
	fi
	echo "appliance: packages installed ($(since "$t") s)"
	image_customise "$r"
	chroot "$r" apt-get clean
	rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf"
	unmount_under "$r"
}
