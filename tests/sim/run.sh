#!/bin/bash
# run.sh SIM [FIRST LAST] - the simulator's part of `make test`: every seed of the
# regression corpus (tests/sim/seeds), then seeds FIRST..LAST (default 1..3000).
# Prints "sim: N passed, M failed" last; exit 0 only when all passed.
set -u
sim=${1:?usage: run.sh SIM [FIRST LAST]}
first=${2:-1}
last=${3:-3000}
dir=$(dirname "$0")
passed=0 failed=0
for s in $(grep -o '^[0-9][0-9]*' "$dir/seeds"); do
  if "$sim" --seed "$s" >/tmp/pgw-sim.$$ 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    cat /tmp/pgw-sim.$$
  fi
done
rm -f /tmp/pgw-sim.$$
echo "sim: corpus: $passed passed, $failed failed"
out=$("$sim" --seeds $((last - first + 1)) --from "$first")
echo "$out" | grep -v '^sim: [0-9]* passed'
p=$(echo "$out" | sed -n 's/^sim: \([0-9]*\) passed.*/\1/p')
f=$(echo "$out" | sed -n 's/^sim: [0-9]* passed, \([0-9]*\) failed$/\1/p')
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-1}))
echo "sim: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
