#!/bin/bash
# build-deb.sh VERSION - build the Debian package from this tree (`make deb`).
#
# The tree as it is (not only what git tracks, without build/ and .git) is copied to
# build/pkg/deb/pgwarden-VERSION/, packaging/debian becomes its debian/, and
# debian/changelog is written with VERSION - the Makefile's, the single source of the
# version that `pgwarden --version` prints too.  Then dpkg-buildpackage -b.
# Result: build/pkg/pgwarden_VERSION_ARCH.deb (and .buildinfo, .changes beside it).
set -euo pipefail
version=${1:?usage: build-deb.sh VERSION}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$top/build/pkg
work=$out/deb
src=$work/pgwarden-$version
rm -rf "$work"
mkdir -p "$src"
tar --exclude=./build --exclude=./.git --exclude='*/__pycache__' --exclude=./.pytest_cache \
	-cf - . | tar -C "$src" -xf -
rm -rf "$src/debian"
cp -a packaging/debian "$src/debian"

# The changelog's date: the last commit's, so that two builds of one commit agree.
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
maint=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
cat >"$src/debian/changelog" <<CHL
pgwarden ($version) unstable; urgency=medium

  * pgwarden $version.  This entry is written by \`make deb\` from the version
    in the Makefile; the project's history is in its git log.

 -- $maint  $(LC_ALL=C date -u -R -d "@$epoch")
CHL

cd "$src"
SOURCE_DATE_EPOCH=$epoch dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1 || {
	tail -40 "$work/build.log" >&2
	echo "build-deb.sh: dpkg-buildpackage failed; the whole log is $work/build.log" >&2
	exit 1
}
mkdir -p "$out"
for f in "$work"/pgwarden*_"$version"_*; do
	cp "$f" "$out/"
done
deb=$(ls "$out"/pgwarden_"$version"_*.deb)
echo "deb: $deb ($(du -h "$deb" | cut -f1))"
