#!/bin/bash
# run-unit.sh DIR - run every unit test binary in DIR (cmocka), print their output, and end
# with one line:  unit: N passed, N failed
# N counts test cases (from cmocka's "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)"
# lines); a binary that prints neither counts as one case, passed when it exits 0.  A binary
# that exits non-zero without reporting a failed case (a crash, a sanitizer abort) counts one
# failure.  Exit status: 0 only when something ran and nothing failed.
set -u
dir=${1:?usage: run-unit.sh DIR}
if [ ! -d "$dir" ]; then
  echo "run-unit.sh: $dir: no such directory" >&2
  echo "unit: 0 passed, 0 failed"
  exit 1
fi
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0}"
: "${UBSAN_OPTIONS:=print_stacktrace=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

passed=0 failed=0 bins=0 bad_bins=""
out=$(mktemp) || exit 2
trap 'rm -f "$out"' EXIT
for t in "$dir"/*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  bins=$((bins + 1))
  echo "=== $(basename "$t")"
  "$t" >"$out" 2>&1
  rc=$?
  cat "$out"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  if ! grep -q '^\[  \(PASSED\|FAILED\)  \] [0-9]' "$out"; then
    if [ "$rc" -eq 0 ]; then p=1; else f=1; fi
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
  fi
  if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error:' "$out" && [ "$f" -eq 0 ]; then
    f=1
  fi
  [ "$f" -gt 0 ] && bad_bins="$bad_bins $(basename "$t")"
  echo "=== $(basename "$t"): exit $rc, $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
done
[ -n "$bad_bins" ] && echo "failing:$bad_bins"
[ "$bins" -eq 0 ] && echo "run-unit.sh: no test binaries in $dir" >&2
echo "unit: $passed passed, $failed failed"
[ "$bins" -gt 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
