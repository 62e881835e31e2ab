#!/usr/bin/env bash
# cxx.sh - the C++ operators: tlmalloc's own operator new and delete against
# libstdc++'s operators calling tlmalloc's malloc and free (the same
# library, preloaded after libstdc++ so that the program binds libstdc++'s
# operators: "tlmalloc-via-libstdc++"), and the peers, all by LD_PRELOAD.
#  1. callgrind instructions per new+delete pair of 64..71 bytes, loop
#     included (bench/cxxpairs.cc; a short run subtracted from a long one),
#     with plain and with sized delete;
#  2. time of bench/cxxmap (std::map<std::string, std::string> churn) at 1
#     and 2 threads, hyperfine with the allocators interleaved.
#   bench/cxx.sh [--lib PATH] [--bin CXXMAP] [--runs N] [--ops N] [--no-callgrind]
#   (--runs: timing rounds, default 5; --ops: cxxmap operations, default 1m)
set -eu
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$BENCH_DIR/../.libs/libtlmalloc.so
BIN=
RUNS=5
OPS=1m
CALLGRIND=1
while [ $# -gt 0 ]; do
    case "$1" in
    --lib) LIB=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --ops) OPS=$2; shift ;;
    --no-callgrind) CALLGRIND=0 ;;
    *) echo "usage: $0 [--lib PATH] [--bin CXXMAP] [--runs N] [--ops N] [--no-callgrind]" >&2; exit 1 ;;
    esac
    shift
done
LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CXX=${CXX:-g++}
$CXX -std=c++17 -O2 "$BENCH_DIR/cxxpairs.cc" -o "$tmp/cxxpairs"
if [ -z "$BIN" ]; then
    BIN=$tmp/cxxmap
    $CXX -std=c++17 -O2 -pthread "$BENCH_DIR/cxxmap.cc" -o "$BIN"
fi

MA=/usr/lib/x86_64-linux-gnu
names=(tlmalloc tlmalloc-via-libstdc++ jemalloc tcmalloc mimalloc glibc)
declare -A pre=(
    [tlmalloc]=$LIB
    [tlmalloc-via-libstdc++]="$MA/libstdc++.so.6:$LIB"
    [jemalloc]=$MA/libjemalloc.so.2
    [tcmalloc]=$MA/libtcmalloc_minimal.so.4
    [mimalloc]=$MA/libmimalloc.so.2
    [glibc]=
)

pairs() { # preload sized
    local n ir=()
    for n in 200000 2200000; do
        LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" \
            "$tmp/cxxpairs" "$n" "$2" >/dev/null 2>&1
        ir+=("$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$tmp/cg.$n")")
    done
    awk -v a="${ir[0]}" -v b="${ir[1]}" 'BEGIN {printf "%.1f", (b - a) / 2000000}'
}

if [ "$CALLGRIND" = 1 ]; then
    echo "instructions per new+delete pair, 64..71 B (callgrind, loop included):"
    printf '  %-24s %8s %8s\n' allocator delete sized
    for a in "${names[@]}"; do
        printf '  %-24s %8s %8s\n' "$a" "$(pairs "${pre[$a]}" 0)" "$(pairs "${pre[$a]}" 1)"
    done
fi

# Timing: ROUNDS rounds, each running every allocator once, starting with
# a different one each round (the machine's load changes under a run).
# Wall time and CPU time (user + system) are reported; on a loaded shared
# machine the CPU time is the steadier of the two.
for t in 1 2; do
    n=${#names[@]}
    for ((r = 0; r < RUNS; r++)); do
        cmds=()
        for ((k = 0; k < n; k++)); do
            a=${names[$(((k + r) % n))]}
            cmds+=(-n "$a" "env LD_PRELOAD=${pre[$a]} $BIN -t $t -n $OPS -q")
        done
        hyperfine -N -r 1 --export-json "$tmp/t$t.r$r.json" "${cmds[@]}" >/dev/null 2>&1
    done
    python3 - "$t" "$tmp"/t"$t".r*.json <<'PY'
import json, statistics, sys
wall, cpu = {}, {}
for f in sys.argv[2:]:
    for x in json.load(open(f))["results"]:
        wall.setdefault(x["command"], []).append(x["median"])
        cpu.setdefault(x["command"], []).append(x["user"] + x["system"])
base_w = statistics.median(wall["tlmalloc"])
base_c = statistics.median(cpu["tlmalloc"])
print("cxxmap, %s thread(s), %d rounds: median wall and CPU seconds, each relative to tlmalloc"
      % (sys.argv[1], len(sys.argv) - 2))
for name in wall:
    w, c = statistics.median(wall[name]), statistics.median(cpu[name])
    print("  %-24s wall %6.3f (%4.2f)   cpu %6.3f (%4.2f)" % (name, w, w / base_w, c, c / base_c))
PY
done
