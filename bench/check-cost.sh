#!/usr/bin/env bash
# check-cost.sh - what the always-on pointer checks of free and malloc cost
# (object start, double-free key, free-list link) on the fast-path
# workload. There is one build, with the checks: the library is built
# from the sources with the project's flags, and the script reports
#  - instructions per malloc+free pair, loop included (callgrind, two run
#    lengths, the difference divided by the extra pairs);
#  - of those, the instructions callgrind attributes to the source lines
#    of the checks (tli_hot_is_object_start and the test of tli_divides it
#    runs, the key and link tests of tli_tc_pop, free's test of the list
#    head). The compiler places some shared address arithmetic on those
#    lines too, so this is an upper bound of what the checks add, not the
#    difference to a build without them (no such build exists);
#  - the time of the workload (hyperfine).
#   bench/check-cost.sh [RUNS]        (default 40 timed runs)
set -eu
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$BENCH_DIR/.." && pwd)
RUNS=${1:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

srcs=$(sed -n '/^tl_sources *=/,/^[^	 ]/p' "$SRC/Makefile.am" | tr ' \\\t' '\n' | grep '^src/.*\.c$' | sed "s|^|$SRC/|")
srcs="$srcs $SRC/src/cxx.c" # libtlmalloc's sources (Makefile.am)
no_builtins=$(sed -n '/^TL_NO_ALLOC_BUILTINS *=/,/^[^	 ]/p' "$SRC/Makefile.am" | tr ' \\\t' '\n' | grep '^-fno-builtin')
flags="-std=gnu11 -D_GNU_SOURCE -O2 -g -fPIC -shared -fvisibility=hidden -ftls-model=initial-exec
  $no_builtins -fno-omit-frame-pointer -DTL_OVERRIDE=1 -I$SRC/include -I$SRC/src"
# shellcheck disable=SC2086
cc $flags $srcs -o "$tmp/lib.so" -pthread
cc -O2 -pthread "$BENCH_DIR/fastpath.c" -o "$tmp/fastpath" -ldl

# The lines of the checks in src/internal.h, by their text.
check_lines='tli_hot_is_object_start\(h, cls, a\)|h->div_limit, __ATOMIC_RELAXED|p - h->start\);|return tli_divides\(tli_class_div.inv\[cls\]|uint64_t x = offset \* inv|x = \(x >> shift\)|tli_key_of\(p\) != \(link_key \^ tli_key_secret\)|\(uintptr_t\)next & TL_LINK_BAD_MASK|p == lists->head\[cls\]'

# Each pattern must still name a line of the source: one the code no longer
# has would leave its instructions out of the count without a word.
IFS='|' read -ra check_patterns <<<"$check_lines"
for pat in "${check_patterns[@]}"; do
    if ! grep -Eq -- "$pat" "$SRC/src/internal.h"; then
        echo "check-cost: no line of src/internal.h matches '$pat'" >&2
        exit 1
    fi
done

total=() checks=()
for n in 200000 2200000; do
    LD_PRELOAD=$tmp/lib.so valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" \
        "$tmp/fastpath" -m pairs -q -n "$n" >/dev/null 2>&1
    total+=("$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$tmp/cg.$n")")
    # (callgrind_annotate finds the file by the path the compiler recorded)
    checks+=("$(cd "$SRC" && callgrind_annotate --auto=no --show-percs=no "$tmp/cg.$n" src/internal.h |
        grep -E "$check_lines" | awk '{gsub(",", "", $1); if ($1 ~ /^[0-9]+$/) s += $1} END {print s + 0}')")
done
per_pair() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 2000000}'; }
echo "instructions per malloc+free pair (loop included): $(per_pair "${total[0]}" "${total[1]}")"
echo "  of which on the lines of the checks (an upper bound): $(per_pair "${checks[0]}" "${checks[1]}")"
hyperfine -N -w 5 -r "$RUNS" --export-json "$tmp/t.json" \
    -n checked "env LD_PRELOAD=$tmp/lib.so $tmp/fastpath -m pairs -n 10m -t 1 -q" >/dev/null 2>&1
python3 - "$tmp/t.json" <<'PY'
import json, sys
x = json.load(open(sys.argv[1]))["results"][0]
print("time, fastpath pairs, 1 thread (median / min / mean user, ms): %.1f / %.1f / %.1f"
      % (x["median"] * 1e3, x["min"] * 1e3, x["user"] * 1e3))
PY
