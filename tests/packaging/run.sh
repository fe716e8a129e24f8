#!/bin/bash
# run.sh [VERSION] - every packaging test (`make package-test`, which builds the .deb and
# the .rpm first; as root): test_packages.sh (lintian, rpmlint, units, man pages,
# completion, rpm --root) and test_appliance.sh (the qemu VM).  About 3 minutes with
# the cached root image, 5 from nothing.  Last line: "packaging: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
t0=$(date +%s)
passed=0 failed=0
for t in test_packages.sh test_appliance.sh; do
	echo "=== $t"
	"$here/$t" "$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
	p=$(echo "$line" | sed -n 's/.*: \([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	# a script that failed without counting it (setup, missing package) counts once
	[ "$rc" != 0 ] && [ "${f:-0}" = 0 ] && failed=$((failed + 1))
done
echo "=== packaging tests took $(($(date +%s) - t0)) s"
echo "packaging: $passed passed, $failed failed"
[ "$failed" = 0 ]
