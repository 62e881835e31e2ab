#!/usr/bin/env bash
# prof-cost.sh - what the heap profiler costs: the same library
# (.libs/libtlmalloc.so of the build directory) with prof=0 and with prof=1
# at the default rate (512 KiB), on the fast-path workload and on larson.
#   instructions (callgrind, which does not depend on the machine's load):
#     per malloc+free pair of bench/fastpath (loop included), and per
#     operation of bench/larson at 2 threads, each the difference of a long
#     and a short run so that start-up cancels out; optionally also for a
#     reference library (BEFORE=path/to/.so, e.g. the main branch's build:
#     prof=0 must not add a single instruction);
#   time (hyperfine, interleaved runs), unless RUNS=0: fastpath pairs
#     (1 thread) and larson (2 threads).
#   bench/prof-cost.sh [RUNS]        (default 20 timed runs each)
# Run from the build directory after `make` (it builds bench/fastpath and
# bench/larson with make).
set -eu
RUNS=${1:-20}
LIB=$PWD/.libs/libtlmalloc.so
[ -f "$LIB" ] || { echo "prof-cost: run from the build directory after make" >&2; exit 2; }
make -s bench/fastpath bench/larson >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions per unit: (long run - short run) / (long - short units).
# LIB CONF SHORT LONG command...
per_unit() {
    local lib=$1 conf=$2 short=$3 long=$4 n ir=()
    shift 4
    for n in "$short" "$long"; do
        env TLMALLOC_CONF="$conf" LD_PRELOAD="$lib" valgrind --tool=callgrind \
            --callgrind-out-file="$tmp/cg.$n" "$@" "$n" >/dev/null 2>&1
        ir+=("$(sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' \
            "$tmp/cg.$n" | head -1)")
    done
    awk -v a="${ir[0]}" -v b="${ir[1]}" -v d=$((long - short)) 'BEGIN {printf "%.1f", (b - a) / d}'
}
pairs() { per_unit "$1" "$2" 200000 2200000 bench/fastpath -m pairs -q -n; }
larson_ops() { per_unit "$1" "$2" 200000 1000000 bench/larson -t 2 -q -n; }

echo "instructions per malloc+free pair (fastpath, loop included):"
[ -n "${BEFORE:-}" ] && echo "  before (${BEFORE}): $(pairs "$BEFORE" "")"
p0=$(pairs "$LIB" prof=0)
p1=$(pairs "$LIB" prof=1)
echo "  prof=0: $p0   prof=1: $p1   cost $(awk -v a="$p0" -v b="$p1" 'BEGIN {printf "%+.1f%%", 100 * (b / a - 1)}')"
echo "instructions per larson operation (2 threads):"
[ -n "${BEFORE:-}" ] && echo "  before (${BEFORE}): $(larson_ops "$BEFORE" "")"
l0=$(larson_ops "$LIB" prof=0)
l1=$(larson_ops "$LIB" prof=1)
echo "  prof=0: $l0   prof=1: $l1   cost $(awk -v a="$l0" -v b="$l1" 'BEGIN {printf "%+.1f%%", 100 * (b / a - 1)}')"
echo "target: at most +2% over prof=0"

[ "$RUNS" -gt 0 ] || exit 0
hyperfine -N -w 3 -r "$RUNS" --export-json "$tmp/t.json" \
    -n fastpath-prof0 "env TLMALLOC_CONF=prof=0 LD_PRELOAD=$LIB bench/fastpath -m pairs -n 10m -t 1 -q" \
    -n fastpath-prof1 "env TLMALLOC_CONF=prof=1 LD_PRELOAD=$LIB bench/fastpath -m pairs -n 10m -t 1 -q" \
    -n larson-prof0 "env TLMALLOC_CONF=prof=0 LD_PRELOAD=$LIB bench/larson -t 2 -n 2m -q" \
    -n larson-prof1 "env TLMALLOC_CONF=prof=1 LD_PRELOAD=$LIB bench/larson -t 2 -n 2m -q" \
    >/dev/null 2>&1
python3 - "$tmp/t.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print("time (median / min, ms):")
for w in ("fastpath", "larson"):
    a, b = r[w + "-prof0"], r[w + "-prof1"]
    print("  %-8s prof=0 %.1f / %.1f   prof=1 %.1f / %.1f   cost %+.1f%% (medians), %+.1f%% (minima)"
          % (w, a["median"] * 1e3, a["min"] * 1e3, b["median"] * 1e3, b["min"] * 1e3,
             100 * (b["median"] / a["median"] - 1), 100 * (b["min"] / a["min"] - 1)))
PY
