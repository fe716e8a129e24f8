#!/bin/sh
# install-deps.sh - install the Debian 12 packages pgwarden needs to build, test and demo.
#
# Usage: scripts/install-deps.sh [build|test|soak|demo|bench|vm|fuzz|package|all]   (default: all)
# soak = what tests/faults/soak.py needs (make soak): the test set, which has stress-ng.
# bench = what bench/rest-bench.sh, bench/sync-bench.sh and bench/failover-bench.py need (wrk,
# pgbench, Patroni to compare against; for the failover bench also the fault rig's tools:
# psycopg2, nftables, ipmi_sim and ipmitool, HAProxy, and gnuplot for the PNGs); not in all.
# vm = what tests/vm/test_watchdog_vm.sh needs (qemu, busybox-static); not in all.
# package = what make deb / make rpm and tests/packaging/ need (debhelper, rpmbuild, lintian,
# rpmlint, debootstrap and qemu for the appliance VM); not in all.
# Idempotent: packages already installed are skipped, and apt-get update runs only when
# something is missing.  Must run as root (it is what `make` calls when a tool is missing).
set -eu

BUILD="gcc make pkg-config libc6-dev libpq-dev libcurl4-openssl-dev libjson-c-dev
libyaml-dev libmicrohttpd-dev libgnutls28-dev libsystemd-dev libcmocka-dev libfreeipmi-dev"
RUNTIME="postgresql-15 postgresql-client-15 etcd-server etcd-client curl ca-certificates"
# haproxy and patroni (patronictl; python3-etcd is the DCS module its etcd3 client needs) are
# for tests/integration/test_routing.py: Debian's HAProxy and patronictl against pgwarden.
# openipmi (ipmi_sim: one simulated BMC per test node), ipmitool (pgwarden's fallback IPMI
# client) and fence-agents (fence_ipmilan as an external agent) are for the fencing tests.
TEST="python3-pytest python3-psycopg2 python3-yaml clang-format cppcheck iproute2 procps psmisc
haproxy patroni python3-etcd nftables openssl
openipmi ipmitool fence-agents stress-ng"
BENCH="wrk patroni python3-etcd python3-psycopg2 iproute2 procps nftables openipmi ipmitool
haproxy gnuplot-nox"
# stress-ng (in TEST: make test runs tests/faults/test_soak.py): CPU, I/O and memory load
# inside the leader's cgroup (tests/faults/soak.py)
SOAK="stress-ng"
VM="gcc libc6-dev qemu-system-x86 busybox-static xz-utils perl binutils"
# fuzz = clang and its libFuzzer runtime, for make fuzz (make test replays with gcc)
FUZZ="$BUILD clang"
PACKAGE="$BUILD debhelper dpkg-dev fakeroot lintian rpm rpmlint debootstrap e2fsprogs zstd kmod
qemu-system-x86 busybox-static xz-utils perl binutils systemd man-db groff-base haproxy"

what=${1:-all}
case "$what" in
  build) pkgs="$BUILD" ;;
  test)  pkgs="$BUILD $RUNTIME $TEST" ;;
  soak)  pkgs="$BUILD $RUNTIME $TEST $SOAK" ;;
  demo)  pkgs="$BUILD $RUNTIME openipmi ipmitool" ;;
  bench) pkgs="$BUILD $RUNTIME $BENCH" ;;
  vm)    pkgs="$VM" ;;
  fuzz)  pkgs="$FUZZ" ;;
  package) pkgs="$PACKAGE" ;;
  all)   pkgs="$BUILD $RUNTIME $TEST" ;;
  *) echo "install-deps.sh: unknown set '$what' (expected build, test, soak, demo, bench, vm, fuzz, package or all)" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: missing packages:$missing; run this script as root to install them" >&2
  exit 1
fi
echo "install-deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# The Debian PostgreSQL packages create and start a "main" cluster; a test machine does not
# want it running on port 5432 next to the test clusters.
if [ ! -e /etc/postgresql-common/createcluster.conf ] || ! grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf 2>/dev/null; then
  mkdir -p /etc/postgresql-common
  echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi
apt-get update -q
# policy-rc.d keeps etcd-server's postinst from starting a system etcd on 2379.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends $missing
