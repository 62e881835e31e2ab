#!/usr/bin/env bash
# check-cost.sh - what the always-on pointer checks of free and malloc cost
# (object start, double-free key, free-list link): builds the library twice
# from the same sources with the same flags, with and without them
# (TL_FREE_CHECKS=0, a variant only this script builds), and compares the
# two on the fast-path workload: instructions per malloc+free pair
# (callgrind) and time (hyperfine, interleaved runs).
#   bench/check-cost.sh [RUNS]        (default 40 timed runs each)
set -eu
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$BENCH_DIR/.." && pwd)
RUNS=${1:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

srcs=$(sed -n '/^tl_sources *=/,/^[^	 ]/p' "$SRC/Makefile.am" | tr ' \\\t' '\n\n\n' | grep '^src/.*\.c$' | sed "s|^|$SRC/|")
flags="-std=gnu11 -D_GNU_SOURCE -O2 -g -fPIC -shared -fvisibility=hidden -ftls-model=initial-exec
  -fno-builtin -fno-omit-frame-pointer -DTL_OVERRIDE=1 -I$SRC/include -I$SRC/src"
# shellcheck disable=SC2086
cc $flags $srcs -o "$tmp/checked.so" -pthread
# shellcheck disable=SC2086
cc $flags -DTL_FREE_CHECKS=0 -Wno-unused-function $srcs -o "$tmp/unchecked.so" -pthread
cc -O2 -pthread "$BENCH_DIR/fastpath.c" -o "$tmp/fastpath" -ldl

pairs() {
    local n ir=()
    for n in 200000 2200000; do
        LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" \
            "$tmp/fastpath" -m pairs -q -n "$n" >/dev/null 2>&1
        ir+=("$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$tmp/cg.$n")")
    done
    awk -v a="${ir[0]}" -v b="${ir[1]}" 'BEGIN {printf "%.1f", (b - a) / 2000000}'
}

echo "instructions per malloc+free pair (loop included):"
echo "  checked:   $(pairs "$tmp/checked.so")"
echo "  unchecked: $(pairs "$tmp/unchecked.so")"
hyperfine -N -w 5 -r "$RUNS" --export-json "$tmp/t.json" \
    -n checked "env LD_PRELOAD=$tmp/checked.so $tmp/fastpath -m pairs -n 10m -t 1 -q" \
    -n unchecked "env LD_PRELOAD=$tmp/unchecked.so $tmp/fastpath -m pairs -n 10m -t 1 -q" >/dev/null 2>&1
python3 - "$tmp/t.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
c, u = r["checked"], r["unchecked"]
print("time, fastpath pairs, 1 thread (median / min / mean user, ms):")
for name, x in (("checked", c), ("unchecked", u)):
    print("  %-9s  %.1f / %.1f / %.1f" % (name, x["median"] * 1e3, x["min"] * 1e3, x["user"] * 1e3))
print("cost of the checks: %+.1f%% (medians), %+.1f%% (minima)"
      % (100 * (c["median"] / u["median"] - 1), 100 * (c["min"] / u["min"] - 1)))
PY
