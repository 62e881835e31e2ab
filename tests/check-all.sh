#!/usr/bin/env bash
# The whole test suite: `make check` (Criterion, linked and preloaded,
# smoke tests with system programs, ThreadSanitizer and AddressSanitizer
# builds) and `make check-clients` (real servers and programs under
# tlmalloc). Prints each part's output as it runs and ends with one line
# adding up both parts: "N passed, N failed". Run from the build directory.
set -u
make_cmd=${MAKE:-make}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

total_passed=0 total_failed=0 status=0
part() {
    name=$1
    shift
    echo "==== $name: $*"
    "$@" 2>&1 | tee "$log/$name.out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[A-Za-z]*:? ?[0-9]+ passed, [0-9]+ failed' "$log/$name.out" | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*\b([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
    if [ -z "$line" ]; then
        echo "==== $name: no summary line (exit status $rc), counted as one failure"
        p=0 f=1
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "==== $name: exit status $rc with no failure counted, counted as one failure"
        f=1
    fi
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    [ "$rc" -eq 0 ] || status=1
}

part check "$make_cmd" check
part clients "$make_cmd" check-clients
echo "==== all parts"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ] && [ "$status" -eq 0 ]
