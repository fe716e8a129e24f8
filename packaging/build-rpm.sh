#!/bin/bash
# build-rpm.sh VERSION - build the RPM from this tree (`make rpm`).
#
# The tree as it is (without build/ and .git) becomes SOURCES/pgwarden-VERSION.tar.gz,
# and rpmbuild -bb builds SPECS/pgwarden.spec: packaging/rpm/pgwarden.spec with VERSION
# (the Makefile's) and a %changelog entry written in.  On Debian (no systemd-rpm-macros) packaging/rpm/macros.fallback supplies
# Fedora's macros, and the build dependencies - Fedora package names - are not checked
# (--nodeps): the Debian -dev packages of scripts/install-deps.sh build stand in.
# Result: build/pkg/pgwarden-VERSION-1.ARCH.rpm.
set -euo pipefail
version=${1:?usage: build-rpm.sh VERSION}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$top/build/pkg
topdir=$out/rpm
rm -rf "$topdir"
mkdir -p "$topdir"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
tar --exclude=./build --exclude=./.git --exclude='*/__pycache__' --exclude=./.pytest_cache \
	--transform "s|^\\./|pgwarden-$version/|" -czf "$topdir/SOURCES/pgwarden-$version.tar.gz" .
cp packaging/sysusers.d/pgwarden.conf "$topdir/SOURCES/pgwarden.sysusers"
# the spec with the version, and a %changelog entry dated by the last commit
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
maint=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
{
	sed "s/^%global pgw_version .*/%global pgw_version $version/" packaging/rpm/pgwarden.spec
	echo "* $(LC_ALL=C date -u -d "@$epoch" '+%a %b %d %Y') $maint - $version-1"
	echo "- pgwarden $version, built from the tree by make rpm (history: the git log)"
} >"$topdir/SPECS/pgwarden.spec"
args=(-bb --define "_topdir $topdir")
if [ -z "$(rpm --eval '%{?_unitdir}')" ]; then
	args+=(--load packaging/rpm/macros.fallback --nodeps)
fi
SOURCE_DATE_EPOCH=$epoch rpmbuild "${args[@]}" "$topdir/SPECS/pgwarden.spec" >"$topdir/build.log" 2>&1 || {
	tail -40 "$topdir/build.log" >&2
	echo "build-rpm.sh: rpmbuild failed; the whole log is $topdir/build.log" >&2
	exit 1
}
mkdir -p "$out"
rm -f "$out"/pgwarden-"$version"-*.rpm
find "$topdir/RPMS" -name "pgwarden-$version-*.rpm" ! -name '*debug*' -exec cp {} "$out/" \;
rpmfile=$(ls "$out"/pgwarden-"$version"-*.rpm)
echo "rpm: $rpmfile ($(du -h "$rpmfile" | cut -f1))"
