#!/bin/sh
# run-integration.sh - pgwarden's integration tests (pytest, real etcd and PostgreSQL 15).
#
# Usage: tests/run-integration.sh [PYTEST ARGS...] [TEST PATHS...]   e.g. -k failover, -x, -s
# Runs from the top of the tree, as root (the tests skip themselves otherwise).
# The daemon under test is $PGWARDEN_BIN (default build/asan/pgwarden).
# Exit status: pytest's, except that "no tests collected" (5) is a failure too.
set -u
cd "$(dirname "$0")/.." || exit 2
: "${PGWARDEN_BIN:=$(pwd)/build/asan/pgwarden}"
export PGWARDEN_BIN
# Debian's python3 has python3-pytest and python3-psycopg2; another python3 may come first on PATH.
# Test paths given on the command line (tests/integration/test_ha.py::test_x) replace the
# default directory; everything else is passed to pytest as is.
where=tests/integration
for a in "$@"; do
  case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && where= ;; esac
done
# pytest runs in the background so a SIGTERM to this script reaches it (its handler then
# kills every node, etcd and cgroup it started); Ctrl-C reaches both through the terminal.
/usr/bin/python3 -m pytest -v -p no:cacheprovider $where "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM HUP
trap 'kill -INT $pid 2>/dev/null' INT
while :; do
  wait $pid
  rc=$?
  kill -0 $pid 2>/dev/null || break   # wait was interrupted by a trapped signal: wait again
done
if [ "$rc" -eq 5 ]; then
  echo "run-integration.sh: no integration tests were collected (pytest exit 5): treating that as a failure" >&2
  exit 1
fi
exit "$rc"
