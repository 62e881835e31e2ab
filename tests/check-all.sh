#!/usr/bin/env bash
# The whole test suite: `make check` (Criterion, linked and preloaded,
# smoke tests with system programs, ThreadSanitizer and AddressSanitizer
# builds) and `make check-clients` (real servers and programs under
# tlmalloc). Prints each part's output as it runs and ends with one line
# adding up both parts: "N passed, N failed". Run from the build directory.
#
# CHECK_ALL_CI=1 (.ci/run sets it) adds two parts, each one check, so that
# CI's last line counts them too:
#   distcheck   `make distcheck`: the tarball builds and passes make check
#               from a read-only source tree
#   clean tree  in an in-tree build of a git checkout, after everything
#               above was built: `git status --porcelain` prints nothing
#               (every build output is ignored, nothing tracked changed)
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

# A part that is one check: it passes when the command exits 0.
single() {
    name=$1
    shift
    echo "==== $name: $*"
    if "$@" 2>&1; then
        echo "PASS $name"
        total_passed=$((total_passed + 1))
    else
        echo "FAIL $name"
        total_failed=$((total_failed + 1))
        status=1
    fi
}

# Prints what git reports as changed or not ignored, and fails if anything.
tree_clean() {
    srcdir=$(cd "$(dirname "$0")/.." && pwd -P)
    top=$(git -C "$srcdir" rev-parse --show-toplevel 2>/dev/null) || top=""
    if [ "$top" != "$srcdir" ] || [ "$(pwd -P)" != "$srcdir" ]; then
        echo "not an in-tree build of a git checkout: nothing to check"
        return 0
    fi
    changes=$(git -C "$srcdir" status --porcelain --untracked-files=all)
    [ -z "$changes" ] && return 0
    echo "git status --porcelain after the build and the tests:"
    echo "$changes"
    return 1
}

part check "$make_cmd" check
part clients "$make_cmd" check-clients
if [ "${CHECK_ALL_CI:-0}" = 1 ]; then
    # The sanitizer and memcheck builds ran above from the same sources;
    # the tarball's make check leaves them out (TL_SKIP_SAN=1) to keep CI
    # short.
    single distcheck env TL_SKIP_SAN=1 "$make_cmd" distcheck
    single "clean tree" tree_clean
fi
echo "==== all parts"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ] && [ "$status" -eq 0 ]
