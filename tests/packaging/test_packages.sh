#!/bin/bash
# test_packages.sh [VERSION] - host-side checks of the packages and what is in them
# (`make package-test` builds them first; run as root for the rpm --root part).
#
#   version     the Makefile's VERSION = pgwarden --version = .deb = .rpm
#   lintian     no error or warning (overrides in packaging/debian/pgwarden.lintian-overrides)
#   rpmlint     no error or warning (packaging/rpm/rpmlint.toml, each filter with its reason)
#   units       systemd-analyze verify (in a Debian root with the .deb unpacked) and
#               security --offline: exposure <= 2.0, the remaining items listed
#   man pages   man --warnings: no warning; NAME sections lexgrog can read
#   completion  bash completion of commands, options and option values
#   config      the packaged configuration is valid and gives no warning; HAProxy accepts
#               the example; tmpfiles.d and sysusers.d files apply to an empty root
#   rpm --root  install into a scratch Debian root (scriptlets run there), rpm -V, erase
#
# Ends with "packages: N passed, N failed"; exit 0 when nothing failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
VERSION=${1:-$(sed -n 's/^VERSION *:= *//p' Makefile)}
WORK=${PGW_PKGTEST_WORK:-$top/build/pkgtest}
deb=build/pkg/pgwarden_${VERSION}_amd64.deb
changes=build/pkg/pgwarden_${VERSION}_amd64.changes
rpmf=$(ls build/pkg/pgwarden-"$VERSION"-1*.x86_64.rpm 2>/dev/null | head -1)
unit=packaging/systemd/pgwarden.service
pass=0 fail=0
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

ok() { echo "PASS $1"; pass=$((pass + 1)); }
bad() {
	echo "FAIL $1"
	fail=$((fail + 1))
	[ -s "$OUT" ] && sed 's/^/    | /' "$OUT" | head -40
}
check() {
	local name=$1
	shift
	if "$@" >"$OUT" 2>&1; then ok "$name"; else bad "$name"; fi
}
show() { sed 's/^/    /'; }

[ -f "$deb" ] || { echo "test_packages.sh: $deb is missing (make deb)" >&2; exit 2; }
[ -n "$rpmf" ] || { echo "test_packages.sh: no build/pkg/pgwarden-$VERSION-1*.rpm (make rpm)" >&2; exit 2; }
t0=$(date +%s.%N)
x=$WORK/deb-contents
rm -rf "$x"
mkdir -p "$x"
dpkg-deb -x "$deb" "$x"

# ---------------------------------------------------------------- version
v_bin=$("$x/usr/bin/pgwarden" --version)
v_deb=$(dpkg-deb -f "$deb" Version)
v_rpm=$(rpm -qp --qf '%{VERSION}' "$rpmf" 2>/dev/null)
echo "versions: Makefile $VERSION, pgwarden --version \"$v_bin\", .deb $v_deb, .rpm $v_rpm"
check "one version everywhere ($VERSION)" test "$v_bin|$v_deb|$v_rpm" = "pgwarden $VERSION|$VERSION|$VERSION"

# ---------------------------------------------------------------- lintian, rpmlint
lintian --allow-root -I -E --pedantic --display-info --fail-on error,warning "$changes" >"$OUT" 2>&1
lrc=$?
echo "lintian (-I -E --pedantic): $(grep -c '^[EWIPX]:' "$OUT") tags; overridden: $(lintian --allow-root --show-overrides -I -E --pedantic "$changes" 2>/dev/null | grep -c '^O:')"
[ -s "$OUT" ] && show <"$OUT"
if [ "$lrc" = 0 ] && ! grep -q '^[EW]:' "$OUT"; then ok "lintian: no error, no warning"; else bad "lintian"; fi
rpmlint -c packaging/rpm/rpmlint.toml "$rpmf" build/pkg/rpm/SPECS/pgwarden.spec >"$OUT" 2>&1
rrc=$?
tail -1 "$OUT" | show
if [ "$rrc" = 0 ] && grep -q ' 0 errors, 0 warnings' "$OUT"; then ok "rpmlint: no error, no warning"; else bad "rpmlint"; fi

# ---------------------------------------------------------------- systemd unit
systemd-analyze security --offline=yes "$unit" >"$OUT" 2>&1
exposure=$(sed -n 's/.*Overall exposure level for pgwarden.service: \([0-9.]*\).*/\1/p' "$OUT")
echo "systemd-analyze security --offline=yes: exposure $exposure; remaining items:"
grep '^✗' "$OUT" | sed 's/  */ /g' | show
if awk -v e="${exposure:-9}" 'BEGIN { exit !(e <= 2.0) }'; then ok "exposure $exposure <= 2.0"; else bad "exposure ${exposure:-?} > 2.0"; fi

# ---------------------------------------------------------------- man pages
for m in packaging/man/pgwarden.8 packaging/man/pgwardenctl.8 packaging/man/pgwarden.yml.5; do
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$m" 2>"$OUT" >/dev/null
	if [ ! -s "$OUT" ] && lexgrog "$m" >/dev/null 2>&1; then ok "man page $(basename "$m"): no warning"; else bad "man page $m"; fi
done

# ---------------------------------------------------------------- bash completion
complete_words() { # complete_words WORD... : what completing the last word offers
	bash -c '
		. packaging/bash-completion/pgwardenctl
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_pgwardenctl pgwardenctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		echo "${COMPREPLY[*]}"' complete "$@"
}
check "completion: pgwardenctl sw -> switchover" test "$(complete_words pgwardenctl sw)" = switchover
check "completion: commands" test "$(complete_words pgwardenctl re)" = "resume restart reinit reload"
check "completion: list -f -> formats" test "$(complete_words pgwardenctl list -f '')" = "table json yaml"
check "completion: restart --r -> --role" test "$(complete_words pgwardenctl restart --r)" = "--role"
check "completion: restart --role -> roles" test "$(complete_words pgwardenctl restart --role '')" = "primary replica any"
check "completion: fence-log --v -> --verify" test "$(complete_words pgwardenctl fence-log --v)" = "--verify"

# ---------------------------------------------------------------- configuration files
"$x/usr/bin/pgwarden" --check-config "$x/etc/pgwarden/pgwarden.yml" >"$OUT" 2>&1
if [ $? = 0 ] && [ "$(wc -l <"$OUT")" = 1 ]; then ok "packaged pgwarden.yml: valid, no warning"; else bad "packaged pgwarden.yml"; fi
check "HAProxy accepts examples/haproxy.cfg" haproxy -c -f packaging/examples/haproxy.cfg
r=$WORK/tmpfiles-root
rm -rf "$r"
mkdir -p "$r/etc"
cp /etc/passwd /etc/group "$r/etc/"
getent passwd postgres >/dev/null || echo 'postgres:x:990:990::/var/lib/postgresql:/bin/sh' >>"$r/etc/passwd"
getent group postgres >/dev/null || echo 'postgres:x:990:' >>"$r/etc/group"
mkdir -p "$r/usr/lib/sysusers.d" "$r/usr/lib/tmpfiles.d"
cp packaging/sysusers.d/pgwarden.conf "$r/usr/lib/sysusers.d/"
cp packaging/tmpfiles.d/pgwarden.conf "$r/usr/lib/tmpfiles.d/"
check "sysusers.d: systemd-sysusers creates the group pgwarden" sh -c \
	"systemd-sysusers --root='$r' pgwarden.conf && grep -q '^pgwarden:' '$r/etc/group'"
check "tmpfiles.d: systemd-tmpfiles --create" sh -c \
	"systemd-tmpfiles --root='$r' --create pgwarden.conf && test \"\$(stat -c '%a' '$r/var/lib/pgwarden')\" = 750"
rm -rf "$r"

# ---------------------------------------------------------------- rpm --root, unit verify
if [ "$(id -u)" = 0 ]; then
	# shellcheck source=tests/packaging/lib-image.sh
	. tests/packaging/lib-image.sh
	if appliance_rootfs "$deb" >"$OUT" 2>&1; then
		show <"$OUT"
		r=$WORK/rpm-root
		rm -rf --one-file-system "$r"
		mkdir -p "$r"
		zstd -dc "$AR/rootfs.tar.zst" | tar -C "$r" -xf -
		[ -e "$r/dev/null" ] || mknod -m 0666 "$r/dev/null" c 1 3
		# systemd's presets as on Fedora and RHEL: a unit is not enabled unless listed
		echo 'disable *' >"$r/usr/lib/systemd/system-preset/99-default.preset"
		check "rpm --root: initdb" rpm --root "$r" --initdb
		check "rpm --root: install (scriptlets run in the root)" rpm --root "$r" -ivh --nodeps "$top/$rpmf"
		check "rpm --root: rpm -V (files, modes, owners)" rpm --root "$r" -V --nodeps pgwarden
		check "rpm --root: %pre created the group pgwarden" grep -q '^pgwarden:' "$r/etc/group"
		check "rpm --root: modes and owners" test "$(chroot "$r" stat -c '%a %U %G' /etc/pgwarden/pgwarden.yml \
			/etc/pgwarden/fencing.secret /var/lib/pgwarden | tr '\n' ' ')" = "640 root postgres 600 postgres postgres 750 postgres postgres "
		check "rpm --root: configuration with Fedora's paths is valid" chroot "$r" /usr/bin/pgwarden --check-config /etc/pgwarden/pgwarden.yml
		check "rpm --root: not enabled (preset)" test ! -e "$r/etc/systemd/system/multi-user.target.wants/pgwarden.service"
		# --man=no: the root has no man-db (the appliance test checks Documentation= too)
		systemd-analyze verify --man=no --root="$r" /usr/lib/systemd/system/pgwarden.service >"$OUT" 2>&1
		if [ $? = 0 ] && [ ! -s "$OUT" ]; then
			ok "systemd-analyze verify --root (rpm's unit in a Debian root)"
		else
			bad "systemd-analyze verify --root"
		fi
		check "rpm --root: erase" rpm --root "$r" -e pgwarden
		check "rpm --root: erase removed the files" sh -c "! ls -d '$r'/usr/bin/pgwarden* '$r'/etc/pgwarden '$r'/usr/lib/systemd/system/pgwarden.service '$r'/var/lib/pgwarden 2>/dev/null | grep ."
		rm -rf --one-file-system "$r"
	else
		cat "$OUT"
		bad "the Debian root for rpm --root could not be built"
	fi
else
	echo "SKIP rpm --root (needs root)"
fi
rm -rf "$x"
echo "time: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
echo "packages: $pass passed, $fail failed"
[ "$fail" = 0 ]
