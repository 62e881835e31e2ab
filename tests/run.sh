#!/bin/sh
# run.sh - the whole tlmalloc test suite; `make check` runs it.
#
#  1. tests/test_linked   Criterion tests, linked with libtlmalloc
#  2. tests/test_preload  the same general tests, tlmalloc injected with
#                         LD_PRELOAD=<builddir>/.libs/libtlmalloc.so
#     tests/test_layers   the layers below malloc, the allocator's objects
#                         linked in (t_layers.c)
#  3. tests/smoke.sh      real programs (python3, sort, gcc, sqlite3) preloaded;
#     tests/install.sh    make install into a DESTDIR: pkg-config, man pages;
#     and "check mode off costs nothing": callgrind counts the instructions
#     of tests/fastpath_loop (preloaded) with and without options that leave
#     check mode off; the cost per malloc+free pair must not change
#  4. ThreadSanitizer and AddressSanitizer/UBSan programs, built here from
#     the allocator sources (-DTL_OVERRIDE=0, the tl_ functions only) into a
#     temporary directory
#  5. memcheck with tlmalloc in place: a -DTL_VALGRIND build of the sources
#     preloaded into tests/vg_errors under valgrind
#  6. in a git checkout: no tracked file is one git ignores (a build output)
#
# Environment: TL_SRCDIR (source tree), TL_BUILDDIR (build tree, default
# the current directory), TL_SAN_CC (compiler for the sanitizer builds,
# default clang, else cc), TL_SKIP_SAN=1 to leave out part 4.
# Ends with "N passed, N failed" over every Criterion test, smoke check and
# sanitizer check, and exits non-zero if anything failed.
set -u

srcdir=${TL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${TL_BUILDDIR:-$(pwd)}
lib=$builddir/.libs/libtlmalloc.so
jobs=${TL_TEST_JOBS:-2}

passed=0
failed=0
notes=""
note() { notes="$notes
  $1"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlmalloc-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

section() { printf '\n===== %s =====\n' "$1"; }

# Runs a Criterion binary (output to the terminal and to a log) and adds
# its Synthesis figures to the totals. A binary that dies without a
# Synthesis line counts as one failure.
run_criterion() {
    name=$1
    shift
    log=$tmp/$name.log
    # Into a file, then shown: a process a test left behind (a child of a
    # test that timed out) may hold its output open, and a pipe to tee would
    # wait for it.
    "$@" >"$log" 2>&1
    echo "exit status $?" >"$log.status"
    cat "$log"
    status=$(sed -n 's/exit status //p' "$log.status" 2>/dev/null)
    syn=$(grep 'Synthesis:' "$log" | tail -n 1)
    if [ -z "$syn" ]; then
        echo "$name: no Criterion synthesis (exit status $status)"
        failed=$((failed + 1))
        note "$name: did not complete (exit status $status)"
        return
    fi
    tested=$(echo "$syn" | sed -n 's/.*Tested: *\([0-9]*\).*/\1/p')
    passing=$(echo "$syn" | sed -n 's/.*Passing: *\([0-9]*\).*/\1/p')
    passed=$((passed + passing))
    failed=$((failed + tested - passing))
    if [ "$tested" -ne "$passing" ]; then
        note "$name: $((tested - passing)) of $tested tests failed:"
        for t in $(grep -E '^\[(FAIL|CRASH)\]|^\[----\] .*(crash|Timed out)' "$log" |
            sed -n 's/^\[FAIL\] \([^:]*::[^:]*\):.*/\1/p'); do
            note "    $t"
        done
    fi
}

# Counts "PASS x" / "FAIL x" lines of a smoke or sanitizer log.
count_lines() {
    p=$(grep -c '^PASS ' "$1")
    f=$(grep -c '^FAIL ' "$1")
    passed=$((passed + p))
    failed=$((failed + f))
    grep '^FAIL ' "$1" | while IFS= read -r line; do echo "$line"; done >>"$tmp/failures"
}

# Criterion binaries: libtool leaves a wrapper script in tests/ and the
# program in tests/.libs for a program linked with an uninstalled library.
linked=$builddir/tests/test_linked
preload=$builddir/tests/test_preload

section "test_linked (linked with libtlmalloc)"
if [ -x "$linked" ]; then
    run_criterion test_linked timeout 600 "$linked" --jobs="$jobs"
else
    echo "missing $linked"
    failed=$((failed + 1))
    note "test_linked: not built"
fi

section "test_preload (LD_PRELOAD=$lib)"
if [ -x "$preload" ] && [ -f "$lib" ]; then
    run_criterion test_preload timeout 600 env LD_PRELOAD="$lib" "$preload" --jobs="$jobs"
else
    echo "missing $preload or $lib"
    failed=$((failed + 1))
    note "test_preload: not built or library missing"
fi

# The C++ operators (tests/t_cxx.cc), linked and preloaded; and a C
# program preloading tlmalloc loads no libstdc++ (its references are weak).
section "C programs do not load libstdc++"
if readelf -d "$lib" | grep -q 'NEEDED.*libstdc++' ||
    LD_TRACE_LOADED_OBJECTS=1 LD_PRELOAD="$lib" "$builddir/tests/fastpath_loop" | grep -q 'libstdc++'; then
    echo "FAIL libtlmalloc.so makes a C program load libstdc++"
    failed=$((failed + 1))
    note "libtlmalloc.so makes a C program load libstdc++"
else
    echo "PASS no libstdc++ in a C program preloading libtlmalloc.so"
    passed=$((passed + 1))
fi
for v in linked preload; do
    prog=$builddir/tests/test_cxx_$v
    section "test_cxx_$v"
    if [ ! -x "$prog" ] || [ ! -f "$lib" ]; then
        echo "missing $prog or $lib"
        failed=$((failed + 1))
        note "test_cxx_$v: not built or library missing"
    elif [ $v = linked ]; then
        run_criterion test_cxx_linked timeout 300 env TL_BUILDDIR="$builddir" "$prog" --jobs="$jobs"
    else
        run_criterion test_cxx_preload timeout 300 env TL_BUILDDIR="$builddir" LD_PRELOAD="$lib" \
            "$prog" --jobs="$jobs"
    fi
done

section "test_layers (the allocator's objects linked in, below malloc)"
if [ -x "$builddir/tests/test_layers" ]; then
    run_criterion test_layers timeout 600 "$builddir/tests/test_layers" --jobs="$jobs"
else
    echo "missing $builddir/tests/test_layers"
    failed=$((failed + 1))
    note "test_layers: not built"
fi

section "smoke tests (real programs with tlmalloc preloaded)"
timeout 600 sh "$srcdir/tests/smoke.sh" "$lib" 2>&1 | tee "$tmp/smoke.log"
count_lines "$tmp/smoke.log"
grep -q '^smoke: ' "$tmp/smoke.log" || {
    failed=$((failed + 1))
    note "smoke.sh did not complete"
}

section "make install: pkg-config and manual pages (tests/install.sh)"
timeout 600 sh "$srcdir/tests/install.sh" "$builddir" "$srcdir" 2>&1 | tee "$tmp/install.log"
count_lines "$tmp/install.log"
grep -q '^install: ' "$tmp/install.log" || {
    failed=$((failed + 1))
    note "install.sh did not complete"
}

# ---- check mode off costs nothing ----------------------------------------
# The fast paths never look at the check option, so options that leave
# check mode off must not change what a malloc+free pair costs. callgrind
# counts every instruction of tests/fastpath_loop N (64 live blocks, free
# one and allocate one of 64..71 bytes per iteration) with tlmalloc
# preloaded, for N = 100000 and 1100000; the difference over 1000000 is the
# cost of one pair, loop included. Instruction counts are deterministic;
# only the decay clock's scavenging, a few thousand instructions each
# time it runs, depends on speed, so the cost is compared rounded to whole
# instructions (the exact figures are printed). One check in the totals.
section "check mode off costs nothing"
fastpath=$builddir/tests/fastpath_loop
# cg_count N [VAR=VALUE]: instructions of one run, or nothing on failure.
cg_count() {
    n=$1
    shift
    out=$tmp/callgrind.out
    rm -f "$out"
    env -u TLMALLOC_CONF -u MALLOC_CHECK_ "$@" LD_PRELOAD="$lib" valgrind --tool=callgrind \
        --callgrind-out-file="$out" "$fastpath" "$n" >/dev/null 2>"$tmp/callgrind.err" || return 0
    sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$out" | head -n 1
}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED: valgrind is not installed"
    note "check mode off costs nothing: skipped, no valgrind"
elif [ ! -x "$fastpath" ] || [ ! -f "$lib" ]; then
    echo "FAIL fastpath_cost: $fastpath or $lib missing" | tee -a "$tmp/failures"
    failed=$((failed + 1))
else
    fp_ok=1 fp_ref="" fp_lines=""
    for conf in "" TLMALLOC_CONF=stats=0 MALLOC_CHECK_=0; do
        # shellcheck disable=SC2086
        i1=$(cg_count 100000 $conf)
        # shellcheck disable=SC2086
        i2=$(cg_count 1100000 $conf)
        label=${conf:-TLMALLOC_CONF unset}
        if [ -z "$i1" ] || [ -z "$i2" ]; then
            cat "$tmp/callgrind.err"
            echo "FAIL fastpath_cost: callgrind failed with $label" | tee -a "$tmp/failures"
            fp_ok=2
            break
        fi
        diff=$((i2 - i1))
        pair=$(((diff + 500000) / 1000000))
        hundredths=$(((diff + 5000) / 10000))
        fp_lines="$fp_lines
  $label: $i1 instructions for 100000 pairs, $i2 for 1100000: $((hundredths / 100)).$(printf '%02d' $((hundredths % 100))) per pair"
        if [ -z "$fp_ref" ]; then
            fp_ref=$pair
        elif [ "$pair" -ne "$fp_ref" ]; then
            fp_ok=0
        fi
    done
    echo "${fp_lines#?}"
    if [ "$fp_ok" = 1 ]; then
        echo "fast path: $fp_ref instructions per malloc+free pair (loop included)"
        echo "PASS fastpath_cost: the same with TLMALLOC_CONF unset, stats=0 and MALLOC_CHECK_=0"
        passed=$((passed + 1))
    elif [ "$fp_ok" = 0 ]; then
        echo "FAIL fastpath_cost: the cost per malloc+free pair depends on options that leave check mode off" |
            tee -a "$tmp/failures"
        failed=$((failed + 1))
    else
        failed=$((failed + 1))
    fi
fi

# ---- sanitizer builds --------------------------------------------------
# The allocator's .c files, read from Makefile.am's tl_sources.
tl_sources=$(sed -n '/^tl_sources *=/,/^[^	 ]/p' "$srcdir/Makefile.am" |
    tr ' \\\t' '\n\n\n' | grep '^src/.*\.c$')
if [ -z "$tl_sources" ]; then
    echo "tests/run.sh: no src/*.c in Makefile.am's tl_sources: cannot build the sanitizer variants" >&2
    exit 1
fi
srcs=""
for s in $tl_sources; do srcs="$srcs $srcdir/$s"; done

san_cc=${TL_SAN_CC:-}
if [ -z "$san_cc" ]; then
    if command -v clang >/dev/null 2>&1; then san_cc=clang; else san_cc=${CC:-cc}; fi
fi
defs=""
[ -f "$builddir/config.h" ] && defs="-DHAVE_CONFIG_H -I$builddir"
san_common_flags="-std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -fno-builtin
    -ftls-model=initial-exec -DTL_OVERRIDE=0 $defs -I$srcdir/include -I$srcdir/src"
san_libs="-pthread -ldl"

# san_run NAME SANITIZER-FLAGS SOURCE ENV...
san_run() {
    name=$1 sflags=$2 prog_src=$3
    shift 3
    section "$name ($san_cc $sflags)"
    echo 'int main(void){return 0;}' >"$tmp/probe.c"
    if ! $san_cc $sflags "$tmp/probe.c" -o "$tmp/probe" >/dev/null 2>&1 || ! "$tmp/probe"; then
        echo "SKIPPED: $san_cc cannot build or run programs with $sflags"
        note "$name: skipped, $san_cc lacks $sflags"
        return
    fi
    # shellcheck disable=SC2086
    if ! $san_cc $san_common_flags $sflags $srcs "$srcdir/tests/$prog_src" \
        -o "$tmp/$name" $san_libs >"$tmp/$name.build" 2>&1; then
        cat "$tmp/$name.build"
        echo "FAIL ${name}_build: the allocator sources do not build with $sflags"
        failed=$((failed + 1))
        note "$name: build failed"
        return
    fi
    env "$@" timeout 420 "$tmp/$name" >"$tmp/$name.log" 2>"$tmp/$name.err"
    status=$?
    cat "$tmp/$name.log"
    reports=$(grep -c 'WARNING: ThreadSanitizer\|ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$tmp/$name.err")
    if [ "$reports" -gt 0 ]; then
        head -n 150 "$tmp/$name.err"
        echo "FAIL ${name}_reports: $reports sanitizer reports (see above)"
        failed=$((failed + 1))
        note "$name: $reports sanitizer reports"
    elif [ "$status" -ne 0 ] && ! grep -q "^FAIL " "$tmp/$name.log"; then
        tail -n 40 "$tmp/$name.err"
        echo "FAIL ${name}_exit: exit status $status"
        failed=$((failed + 1))
        note "$name: exit status $status"
    fi
    count_lines "$tmp/$name.log"
    grep -q " passed, .* failed" "$tmp/$name.log" || {
        failed=$((failed + 1))
        note "$name: did not complete"
    }
}

if [ "${TL_SKIP_SAN:-0}" = 1 ]; then
    note "sanitizer builds skipped (TL_SKIP_SAN=1)"
else
    san_run tsan "-fsanitize=thread" san_tsan.c \
        TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 report_signal_unsafe=0 suppressions=$srcdir/tests/tsan.supp"
    # check mode's leak report at exit scans the process's memory, which
    # under TSan holds terabytes of its shadow mappings
    san_run tsan_checkmode "-fsanitize=thread" san_tsan.c TLMALLOC_CONF=check=1,leaks=1 \
        TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 report_signal_unsafe=0 suppressions=$srcdir/tests/tsan.supp"
    san_run asan "-fsanitize=address,undefined -fno-sanitize-recover=undefined" san_asan.c \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1"
fi

# ---- memcheck with tlmalloc in place ------------------------------------
# A --enable-valgrind build of the sources (TL_VALGRIND: client requests)
# preloaded under memcheck with somalloc=nouserintercepts, so tlmalloc really
# serves the program and memcheck sees its blocks: tests/vg_errors' read
# after free and leak must be reported, nothing else.
if [ "${TL_SKIP_SAN:-0}" = 1 ]; then
    note "memcheck check skipped (TL_SKIP_SAN=1)"
elif ! command -v valgrind >/dev/null 2>&1 || [ ! -f /usr/include/valgrind/memcheck.h ]; then
    echo "SKIPPED memcheck: valgrind or its headers are missing"
    note "memcheck: skipped, valgrind missing"
else
    section "memcheck with tlmalloc in place (--enable-valgrind build)"
    # shellcheck disable=SC2086
    if cc -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -shared -fvisibility=hidden -fno-builtin \
        -ftls-model=initial-exec -DTL_OVERRIDE=1 -DTL_VALGRIND=1 $defs -I"$srcdir/include" \
        -I"$srcdir/src" $srcs "$srcdir/src/cxx.c" -o "$tmp/libtlmalloc-vg.so" -pthread -ldl \
        >"$tmp/vg.build" 2>&1 &&
        cc -O0 -g "$srcdir/tests/vg_errors.c" -o "$tmp/vg_errors" >>"$tmp/vg.build" 2>&1; then
        LD_PRELOAD="$tmp/libtlmalloc-vg.so" timeout 300 valgrind \
            --soname-synonyms=somalloc=nouserintercepts --leak-check=full \
            "$tmp/vg_errors" >"$tmp/vg.out" 2>"$tmp/vg.err"
        grep -E "Invalid read|definitely lost:|ERROR SUMMARY" "$tmp/vg.err"
        if grep -q "vg_errors done" "$tmp/vg.out" &&
            grep -q "Invalid read of size 1" "$tmp/vg.err" &&
            grep -q "definitely lost: 112 bytes in 1 blocks" "$tmp/vg.err" &&
            grep -q "ERROR SUMMARY: 2 errors from 2 contexts" "$tmp/vg.err"; then
            echo "PASS memcheck_sees_tlmalloc_blocks: the read after free and the leak, nothing else"
            passed=$((passed + 1))
        else
            tail -n 60 "$tmp/vg.err"
            echo "FAIL memcheck_sees_tlmalloc_blocks" | tee -a "$tmp/failures"
            failed=$((failed + 1))
        fi
    else
        cat "$tmp/vg.build"
        echo "FAIL memcheck_build: the sources do not build with -DTL_VALGRIND" | tee -a "$tmp/failures"
        failed=$((failed + 1))
    fi
fi

# ---- git checkout --------------------------------------------------------
# A build output committed by mistake (a libtool wrapper script holding the
# build path, an object) shows the tree modified after every build: no
# tracked file may match the ignore rules, and none may be a compiled
# program or object (ELF), which the ignore rules can miss. Only in the top
# of a git checkout (not in an unpacked tarball, even one unpacked inside a
# checkout).
top=$(git -C "$srcdir" rev-parse --show-toplevel 2>/dev/null) || top=""
if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(cd "$srcdir" && pwd -P)" ]; then
    section "git checkout"
    tracked_ignored=$(git -C "$srcdir" ls-files -ci --exclude-standard)
    if [ -z "$tracked_ignored" ]; then
        echo "PASS git_no_tracked_build_outputs: git ls-files -ci --exclude-standard prints nothing"
        passed=$((passed + 1))
    else
        echo "$tracked_ignored"
        echo "FAIL git_no_tracked_build_outputs: tracked files that .gitignore ignores (above)" |
            tee -a "$tmp/failures"
        failed=$((failed + 1))
    fi
    tracked_elf=$(git -C "$srcdir" ls-files -z | while IFS= read -r -d '' f; do
        [ -f "$srcdir/$f" ] && [ "$(head -c 4 "$srcdir/$f" | od -An -c | tr -d ' ')" = '177ELF' ] &&
            echo "$f"
    done)
    if [ -z "$tracked_elf" ]; then
        echo "PASS git_no_tracked_programs: no tracked file is an ELF program or object"
        passed=$((passed + 1))
    else
        echo "$tracked_elf"
        echo "FAIL git_no_tracked_programs: tracked ELF files (above)" | tee -a "$tmp/failures"
        failed=$((failed + 1))
    fi
fi

section "summary"
if [ -n "$notes" ]; then
    echo "notes:$notes"
fi
if [ -s "$tmp/failures" ]; then
    echo "failed checks:"
    sed 's/^/  /' "$tmp/failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
