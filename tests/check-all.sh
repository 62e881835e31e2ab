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
# and two more, each in a build directory of its own over a copy of the
# sources (`make distdir`: a configured source tree takes no VPATH build):
#   debug       ./configure --enable-debug (invariant assertions, the heap
#               walk every debug_check_every-th slow path and at every
#               process exit, so after every test): the Criterion suites,
#               linked, preloaded and layers, each test counted. Left out:
#               the tests that measure time or RSS against timed decay
#               (memory/*, checkmode/allocation_rate): a debug build is
#               slow and its walks hold every lock, on purpose
#   lock rules  CC=clang: the library builds with -Wthread-safety and
#               -Werror (src/lock.h), one check
# and one that builds from the sources alone:
#   check-cost  bench/check-cost.sh, one timed run: it compiles the library
#               from Makefile.am's list of sources with its own flags, so a
#               source that list misses breaks it and nothing else
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

# A copy of the sources for the builds below, made once; echoes its path.
copy_sources() {
    if [ -z "${sources:-}" ]; then
        sources=$log/src
        "$make_cmd" distdir distdir="$sources" >"$log/distdir.out" 2>&1 || {
            cat "$log/distdir.out"
            return 1
        }
    fi
}

# The Criterion suites in a debug build; ends with "debug: N passed, N failed".
debug_suites() {
    copy_sources || { echo "debug: 0 passed, 1 failed"; return 1; }
    mkdir -p "$log/build-debug"
    (cd "$log/build-debug" && "$sources/configure" --enable-debug >configure.out 2>&1 &&
        "$make_cmd" -j2 >make.out 2>&1 &&
        "$make_cmd" -j2 check-programs >>make.out 2>&1) || {
        tail -n 30 "$log/build-debug/configure.out" "$log/build-debug/make.out" 2>/dev/null
        echo "debug: 0 passed, 1 failed"
        return 1
    }
    b=$log/build-debug p=0 f=0
    timed='!(memory/*|checkmode/allocation_rate)'
    for run in linked preload layers; do
        if [ $run = linked ]; then
            (cd "$b" && TL_BUILDDIR=$b timeout 1200 tests/test_linked --jobs=2 --filter "$timed") \
                >"$log/debug-$run.out" 2>&1
        elif [ $run = layers ]; then
            (cd "$b" && timeout 600 tests/test_layers --jobs=2) >"$log/debug-$run.out" 2>&1
        else
            (cd "$b" && TL_BUILDDIR=$b timeout 1200 env LD_PRELOAD="$b/.libs/libtlmalloc.so" \
                tests/test_preload --jobs=2) >"$log/debug-$run.out" 2>&1
        fi
        grep -E '^\[(FAIL|CRASH)\]|^\[----\] .*(crash|Timed out)|tlmalloc: (assertion|heap check|fatal)' \
            "$log/debug-$run.out" | head -n 40
        syn=$(grep 'Synthesis:' "$log/debug-$run.out" | tail -n 1)
        if [ -z "$syn" ]; then
            tail -n 20 "$log/debug-$run.out"
            echo "debug $run: no Criterion synthesis"
            f=$((f + 1))
            continue
        fi
        echo "debug $run: $syn"
        t=$(echo "$syn" | sed -n 's/.*Tested: *\([0-9]*\).*/\1/p')
        ok=$(echo "$syn" | sed -n 's/.*Passing: *\([0-9]*\).*/\1/p')
        p=$((p + ok))
        f=$((f + t - ok))
    done
    echo "debug: $p passed, $f failed"
    [ "$f" -eq 0 ]
}

# The library built by clang, whose lock analysis -Werror makes binding. A
# subshell: it changes directory.
clang_lock_rules() (
    command -v clang >/dev/null || { echo "clang is not installed"; return 1; }
    copy_sources || return 1
    mkdir -p "$log/build-clang"
    cd "$log/build-clang" || return 1
    CC=clang "$sources/configure" --disable-tests >configure.out 2>&1 || {
        tail -n 20 configure.out
        return 1
    }
    grep -q '^TL_WARN_CFLAGS = .*-Wthread-safety' Makefile || {
        echo "configure did not turn on -Wthread-safety for clang"
        return 1
    }
    "$make_cmd" -j2 >make.out 2>&1 || {
        tail -n 30 make.out
        return 1
    }
    # a compiler's diagnostics, not make's own ("make[1]: warning: -j2
    # forced in submake" when check-all itself runs under make -j2)
    if grep -E '^[^ :]+:[0-9]+:([0-9]+:)? (warning|error):' make.out; then
        return 1
    fi
    [ -f .libs/libtlmalloc.so ]
)

# make bench-check-cost's script, shortened to one timed run: it must build
# the library and print its instruction counts.
check_cost() {
    srcdir=$(cd "$(dirname "$0")/.." && pwd -P)
    out=$(bash "$srcdir/bench/check-cost.sh" 1 2>&1)
    rc=$?
    echo "$out"
    [ "$rc" -eq 0 ] && echo "$out" | grep -q '^instructions per malloc+free pair (loop included): [0-9]'
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
    part debug debug_suites
    single "lock rules (clang -Wthread-safety -Werror)" clang_lock_rules
    single check-cost check_cost
fi
echo "==== all parts"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ] && [ "$status" -eq 0 ]
