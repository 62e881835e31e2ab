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
#   bench/cxx.sh [--lib PATH] [--bin CXXMAP] [--runs N] [--ops N]
set -eu
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$BENCH_DIR/../.libs/libtlmalloc.so
BIN=
RUNS=5
OPS=300k
while [ $# -gt 0 ]; do
    case "$1" in
    --lib) LIB=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --ops) OPS=$2; shift ;;
    *) echo "usage: $0 [--lib PATH] [--bin CXXMAP] [--runs N] [--ops N]" >&2; exit 1 ;;
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

echo "instructions per new+delete pair, 64..71 B (callgrind, loop included):"
printf '  %-24s %8s %8s\n' allocator delete sized
for a in "${names[@]}"; do
    printf '  %-24s %8s %8s\n' "$a" "$(pairs "${pre[$a]}" 0)" "$(pairs "${pre[$a]}" 1)"
done

for t in 1 2; do
    cmds=()
    for a in "${names[@]}"; do
        cmds+=(-n "$a" "env LD_PRELOAD=${pre[$a]} $BIN -t $t -n $OPS -q")
    done
    hyperfine -N -w 1 -r "$RUNS" --export-json "$tmp/t$t.json" "${cmds[@]}" >/dev/null 2>&1
    python3 - "$tmp/t$t.json" "$t" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = next(x for x in r if x["command"] == "tlmalloc")["median"]
print("cxxmap, %s thread(s): median / min seconds, median relative to tlmalloc" % sys.argv[2])
for x in r:
    print("  %-24s %6.3f / %6.3f  %5.2f" % (x["command"], x["median"], x["min"], x["median"] / base))
PY
done
