#!/bin/sh
# pg_smoke.sh - real PostgreSQL flow through daemon/pg.c (not part of the unit tests):
# initdb, clone with a slot, promote, rewind, follow.  Run as root (it switches to the
# postgres user with runuser) or as postgres.  Every PostgreSQL it starts is stopped,
# also on failure.
#
#   tests/pg_smoke.sh [fixtures_dir]   (fixtures_dir: save raw pg_controldata outputs)
set -eu

cd "$(dirname "$0")/.."
PORT1=${PORT1:-55432}
PORT2=${PORT2:-55433}
BIN=/usr/lib/postgresql/15/bin
FIXTURES=${1:-}

for p in "$PORT1" "$PORT2"; do
	if ss -ltn | grep -q "127.0.0.1:$p "; then
		echo "port $p is busy" >&2
		exit 1
	fi
done

BASE=$(mktemp -d /tmp/pgw-smoke.XXXXXX)
chmod 755 "$BASE"
mkdir -p "$BASE/node1" "$BASE/node2"

as_pg() {
	if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

cleanup() {
	rc=$?
	for n in node1 node2; do
		if [ -f "$BASE/$n/data/postmaster.pid" ]; then
			as_pg "$BIN/pg_ctl" stop -D "$BASE/$n/data" -m immediate -w -t 30 >/dev/null 2>&1 || true
		fi
	done
	if [ "$rc" -ne 0 ]; then
		for n in node1 node2; do
			[ -f "$BASE/$n/data.log" ] && { echo "== $n server log (tail)"; tail -n 30 "$BASE/$n/data.log"; }
		done
	fi
	rm -rf "$BASE"
	exit "$rc"
}
trap cleanup EXIT INT TERM

# against the sanitizer build's library (make asan), so every module pg.c uses is there
make -s asan >/dev/null
gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -fsanitize=address,undefined \
	-Icore -Idaemon -Iwatchdog -Ifencing -I/usr/include/postgresql \
	tests/pg_smoke.c build/asan/libpgw.a \
	$(pkg-config --libs libpq libcurl json-c yaml-0.1 libmicrohttpd gnutls libsystemd) \
	$(pkg-config --libs libfreeipmi 2>/dev/null) \
	-lpthread -o "$BASE/pg_smoke"
chown -R postgres: "$BASE/node1" "$BASE/node2" 2>/dev/null || true
if [ -n "$FIXTURES" ]; then
	mkdir -p "$FIXTURES"
	chmod 777 "$FIXTURES"
fi

as_pg "$BASE/pg_smoke" "$BASE" "$PORT1" "$PORT2" $FIXTURES
