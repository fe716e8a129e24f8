# kernel.sh - sourced by tests/vm/test_watchdog_vm.sh and tests/packaging/lib-image.sh:
# which Debian kernel to boot in qemu, and its ELF vmlinux for a fast PVH boot.

# The linux-image-X package linux-image-amd64 depends on (e.g. linux-image-6.1.0-56-amd64).
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# extract_vmlinux BZIMAGE OUT: the uncompressed ELF inside Debian's (xz) bzImage; qemu
# boots it through its PVH entry, skipping the firmware and the in-guest decompressor
# (seconds under TCG).  Fails when there is no xz stream or the ELF has no PVH note.
extract_vmlinux() {
	local off
	off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$1" | head -1 | cut -d: -f1)
	[ -n "$off" ] || return 1
	# (--single-stream stops at the end of the xz data; the bzImage has more after it)
	xz -dc --single-stream <(tail -c +$((off + 1)) "$1") >"$2" 2>/dev/null || return 1
	# XEN_ELFNOTE_PHYS32_ENTRY (18): CONFIG_PVH
	[[ $(readelf -n "$2" 2>/dev/null) == *"(0x00000012)"* ]]
}
