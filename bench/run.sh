#!/usr/bin/env bash
# tlmalloc benchmark driver.
#
# Runs every workload under each allocator (glibc, tlmalloc, jemalloc,
# tcmalloc, mimalloc; each but glibc by LD_PRELOAD) at 1, 2 and 8 threads
# with hyperfine, interleaving the allocators round by round, and reports
# medians, ratios to tlmalloc, peak RSS, callgrind instructions per
# malloc+free pair and the RSS profile of the memory workload.
#
# usage: bench/run.sh [--quick | --main-job] [--lib PATH] [--bin-dir DIR]
#                     [--out DIR] [--allocators a,b,..] [--only w1,w2,..]
#                     [--rounds N] [--runs N] [--no-callgrind] [--no-memory]
#
#   --quick        small sizes, 3 rounds of 1 run: under 5 minutes
#   (default)      full sizes, 4 rounds of 2 runs: about 10-15 minutes
#   --main-job     larson, server and prodcons at 2 and 8 threads, each at
#                  least a second, 5 rounds, plus the callgrind count,
#                  printed side by side (what bench/main-job.sh runs);
#                  writes nothing under bench/results except its tmp/ folder
#   --lib PATH     libtlmalloc.so to preload (default: $TLMALLOC_LIB, else
#                  ../.libs/libtlmalloc.so relative to this folder)
#   --bin-dir DIR  take the workload programs from DIR (as built by
#                  `make bench`); without it they are compiled here with gcc
#   --out DIR      where latest.md and ratios.png go (default bench/results)
#   --allocators   subset to run, e.g. glibc,tlmalloc
#   --only         subset of workloads, e.g. larson,prodcons
set -u
set -o pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=full
LIB=${TLMALLOC_LIB:-$BENCH_DIR/../.libs/libtlmalloc.so}
BIN_DIR=
OUT_DIR=$BENCH_DIR/results
ONLY_ALLOCS=
ONLY_WORKLOADS=
ROUNDS=
RUNS=
DO_CALLGRIND=1
DO_MEMORY=1

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) MODE=quick ;;
	--full) MODE=full ;;
	--main-job) MODE=main-job ;;
	--lib) LIB=$2; shift ;;
	--lib=*) LIB=${1#*=} ;;
	--bin-dir) BIN_DIR=$2; shift ;;
	--bin-dir=*) BIN_DIR=${1#*=} ;;
	--out) OUT_DIR=$2; shift ;;
	--out=*) OUT_DIR=${1#*=} ;;
	--allocators) ONLY_ALLOCS=$2; shift ;;
	--allocators=*) ONLY_ALLOCS=${1#*=} ;;
	--only) ONLY_WORKLOADS=$2; shift ;;
	--only=*) ONLY_WORKLOADS=${1#*=} ;;
	--rounds) ROUNDS=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--no-callgrind) DO_CALLGRIND=0 ;;
	--no-memory) DO_MEMORY=0 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option '$1' (try --help)" ;;
	esac
	shift
done

case $MODE in
full) : "${ROUNDS:=4}" "${RUNS:=2}" ;;
quick) : "${ROUNDS:=3}" "${RUNS:=1}" ;;
main-job) : "${ROUNDS:=5}" "${RUNS:=1}"; DO_MEMORY=0 ;;
esac

command -v python3 >/dev/null || die "python3 is needed to read hyperfine's JSON (apt-get install python3)"
command -v hyperfine >/dev/null || die "hyperfine is needed (apt-get install hyperfine)"
if [ "$DO_CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
	echo "note: valgrind not installed: no callgrind count (apt-get install valgrind)" >&2
	DO_CALLGRIND=0
fi

# Work folder (ignored by git).  The main job keeps its own so that it never
# mixes with a full run's data.
if [ "$MODE" = main-job ]; then
	WORK=$OUT_DIR/tmp/main-job
else
	WORK=$OUT_DIR/tmp/run
fi
rm -rf "$WORK"
mkdir -p "$WORK/hf" "$WORK/log" || die "cannot create $WORK"
unset LD_PRELOAD

START_TS=$(date +%s)
elapsed() { local s=$(( $(date +%s) - START_TS )); printf '%d:%02d' $((s / 60)) $((s % 60)); }
say() { printf '[%s] %s\n' "$(elapsed)" "$*" >&2; }

# ---------------------------------------------------------------- programs
PROGRAMS="fastpath larson server prodcons falseshare reallocchain churn large memory maxrss cxxmap"
if [ -z "$BIN_DIR" ]; then
	BIN_DIR=$OUT_DIR/tmp/bin
	mkdir -p "$BIN_DIR"
	CC=${CC:-gcc}
	CXX=${CXX:-g++}
	for p in $PROGRAMS; do
		src=$BENCH_DIR/$p.c defs=
		# server is larson.c built with BENCH_SERVER (bench/local.mk)
		[ "$p" = server ] && src=$BENCH_DIR/larson.c defs=-DBENCH_SERVER=1
		[ -f "$src" ] || src=$BENCH_DIR/$p.cc
		if [ ! -x "$BIN_DIR/$p" ] || [ "$src" -nt "$BIN_DIR/$p" ] ||
		   [ "$BENCH_DIR/bench.h" -nt "$BIN_DIR/$p" ]; then
			case $src in
			*.cc) $CXX -std=c++17 -O2 -pthread -o "$BIN_DIR/$p" "$src" ;;
			*) $CC -O2 -pthread $defs -o "$BIN_DIR/$p" "$src" -ldl ;;
			esac || die "cannot compile bench/${src##*/}"
		fi
	done
	say "workload programs compiled into $BIN_DIR"
fi
BIN_DIR=$(cd "$BIN_DIR" && pwd)
for p in $PROGRAMS; do
	[ -x "$BIN_DIR/$p" ] || die "$BIN_DIR/$p is missing (run 'make bench' or drop --bin-dir)"
done

# -------------------------------------------------------------- allocators
MA=/usr/lib/x86_64-linux-gnu
ALL_ALLOCS="glibc tlmalloc jemalloc tcmalloc mimalloc"
declare -A ALIB
ALIB[glibc]=
ALIB[tlmalloc]=$LIB
ALIB[jemalloc]=$MA/libjemalloc.so.2
ALIB[tcmalloc]=$MA/libtcmalloc_minimal.so.4
ALIB[mimalloc]=$MA/libmimalloc.so.2
ALLOCS=()
: >"$WORK/allocators.tsv"
: >"$WORK/notes.txt"
for a in $ALL_ALLOCS; do
	if [ -n "$ONLY_ALLOCS" ] && [[ ",$ONLY_ALLOCS," != *",$a,"* ]]; then
		continue
	fi
	lib=${ALIB[$a]}
	if [ -n "$lib" ]; then
		if [ ! -e "$lib" ]; then
			echo "note: $a skipped: $lib not found" | tee -a "$WORK/notes.txt" >&2
			continue
		fi
		lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
		ALIB[$a]=$lib
		# the library must load and run a trivial program
		if ! LD_PRELOAD=$lib "$BIN_DIR/fastpath" -q -n 1000 >/dev/null 2>"$WORK/log/load-$a.txt"; then
			echo "note: $a skipped: $lib does not run a trivial program: $(head -c 300 "$WORK/log/load-$a.txt")" |
				tee -a "$WORK/notes.txt" >&2
			continue
		fi
	fi
	ALLOCS+=("$a")
	printf '%s\t%s\n' "$a" "${lib:--}" >>"$WORK/allocators.tsv"
done
[ ${#ALLOCS[@]} -gt 0 ] || die "no allocator to run"
say "allocators: ${ALLOCS[*]}"

# ----------------------------------------------------------------- configs
# id | workload | threads | arguments (without -t)
if [ "$MODE" = quick ]; then
	S_FP=5m S_LAR=5m S_SRV=4m S_PC=1m S_FS="-n 300 -w 50000" S_RC=5000 S_CH=5000 S_LG=30 S_CX=500k
else
	S_FP=10m S_LAR=10m S_SRV=8m S_PC=2m S_FS="-n 600 -w 50000" S_RC=10000 S_CH=10000 S_LG=60 S_CX=1m
fi
CONFIGS=()
addcfg() { # workload threads args...
	local w=$1 t=$2; shift 2
	if [ -n "$ONLY_WORKLOADS" ] && [[ ",$ONLY_WORKLOADS," != *",$w,"* ]] &&
	   [[ ",$ONLY_WORKLOADS," != *",${w%%-*},"* ]]; then
		return
	fi
	CONFIGS+=("$w-t$t|$w|$t|$*")
}
if [ "$MODE" = main-job ]; then
	# sized so that the fastest takes a second or more with the machine
	# nearly idle (at 07:04 UTC on 2026-11-29, load average 0.5-2: larson
	# -n 100m 0.80 s, server -n 96m 0.84 s, prodcons -n 40m 2.5 s)
	for t in 2 8; do addcfg larson "$t" larson -n 130m; done
	for t in 2 8; do addcfg server "$t" server -n 120m; done
	for t in 2 8; do addcfg prodcons "$t" prodcons -n 20m; done
else
	for t in 1 2 8; do addcfg fastpath-pairs "$t" fastpath -m pairs -n $S_FP; done
	addcfg fastpath-sweep 1 fastpath -m sweep -n $S_FP
	for t in 1 2 8; do addcfg larson "$t" larson -n $S_LAR; done
	# cache-cold: 2.5 MB per thread, mostly own frees; then mostly remote
	for t in 2 8; do addcfg server "$t" server -n $S_SRV; done
	for t in 2 8; do addcfg server-handoff "$t" server -n $S_SRV -g 400; done
	for t in 2 8; do addcfg prodcons "$t" prodcons -n $S_PC; done
	for t in 2 8; do addcfg prodcons-small "$t" prodcons -n $S_PC -s 16 -S 64; done
	for t in 1 2 8; do addcfg falseshare-active "$t" falseshare -m active $S_FS; done
	for t in 1 2 8; do addcfg falseshare-passive "$t" falseshare -m passive $S_FS; done
	for t in 1 2 8; do addcfg reallocchain "$t" reallocchain -n $S_RC; done
	for t in 1 2 8; do addcfg churn "$t" churn -n $S_CH; done
	for t in 1 2 8; do addcfg large "$t" large -n $S_LG; done
	# the same in the main thread: a single-threaded process
	addcfg large-main 1 large -n $S_LG -m
	for t in 1 2 8; do addcfg cxxmap "$t" cxxmap -n $S_CX; done
fi

{
	echo "mode=$MODE"
	echo "rounds=$ROUNDS"
	echo "runs=$RUNS"
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "nproc=$(nproc)"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: *//')"
	echo "kernel=$(uname -sr)"
	echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version | head -1)"
	echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "hyperfine=$(hyperfine --version | awk '{print $2}')"
	for pkg in libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0; do
		v=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null) && echo "pkg_$pkg=$v"
	done
	tlrev=$(git -C "$BENCH_DIR/.." rev-parse --short HEAD 2>/dev/null) && echo "tlmalloc_rev=$tlrev"
	echo "tlmalloc_lib=${ALIB[tlmalloc]}"
	if [ -n "${ALIB[tlmalloc]}" ] && [ -e "${ALIB[tlmalloc]}" ]; then
		echo "tlmalloc_build=$(date -u -r "${ALIB[tlmalloc]}" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "${ALIB[tlmalloc]}" | cut -c1-12)"
	fi
} >"$WORK/meta.env"
: >"$WORK/configs.tsv"
for c in "${CONFIGS[@]}"; do
	IFS='|' read -r id w t args <<<"$c"
	printf '%s\t%s\t%s\t%s -t %s\n' "$id" "$w" "$t" "$args" "$t" >>"$WORK/configs.tsv"
done

NCFG=${#CONFIGS[@]}
say "$MODE mode: $NCFG configurations x ${#ALLOCS[@]} allocators, $ROUNDS round(s) of $RUNS run(s)"

# ---------------------------------------------------------------- timings
: >"$WORK/checks.tsv"
i=0
for c in "${CONFIGS[@]}"; do
	i=$((i + 1))
	IFS='|' read -r id w t args <<<"$c"
	read -r -a argv <<<"$args"
	prog=${argv[0]}
	rest=("${argv[@]:1}")
	# 1. one checked run per allocator under the maxrss wrapper: it verifies
	#    the allocator passes the workload's own checks, records peak RSS and
	#    warms the file cache.
	ok=()
	for a in "${ALLOCS[@]}"; do
		lib=${ALIB[$a]}
		"$BIN_DIR/maxrss" -p "$lib" -o "$WORK/log/$id-$a.rss" \
			"$BIN_DIR/$prog" "${rest[@]}" -t "$t" -q 2>"$WORK/log/$id-$a.err"
		st=$?
		rss=$(sed -n 's/.*maxrss_kib=\([0-9]*\).*/\1/p' "$WORK/log/$id-$a.rss" 2>/dev/null)
		if [ "$st" = 0 ]; then
			ok+=("$a")
			printf '%s\t%s\t%s\tok\n' "$id" "$a" "${rss:-0}" >>"$WORK/checks.tsv"
		else
			msg=$(head -c 300 "$WORK/log/$id-$a.err" | tr '\n\t' '  ')
			printf '%s\t%s\t%s\tFAIL (exit %s): %s\n' "$id" "$a" "${rss:-0}" "$st" "$msg" >>"$WORK/checks.tsv"
			say "FAIL: $id under $a exited $st: $msg"
		fi
	done
	# 2. timed runs: every round runs all allocators in one hyperfine call,
	#    starting with a different one each round.
	n=${#ok[@]}
	for ((r = 0; r < ROUNDS && n > 0; r++)); do
		cmds=()
		for ((k = 0; k < n; k++)); do
			a=${ok[$(((k + r) % n))]}
			cmds+=(-n "$a" "env LD_PRELOAD=${ALIB[$a]} $BIN_DIR/$prog ${rest[*]} -t $t -q")
		done
		if ! hyperfine --shell=none --style none --runs "$RUNS" \
			--export-json "$WORK/hf/$id.r$r.json" "${cmds[@]}" \
			>"$WORK/log/$id.r$r.hf" 2>&1; then
			# something failed this time: time them one by one to find out
			rm -f "$WORK/hf/$id.r$r.json"
			for ((k = 0; k < n; k++)); do
				a=${ok[$k]}
				if ! hyperfine --shell=none --style none --runs "$RUNS" \
					--export-json "$WORK/hf/$id.r$r.$a.json" -n "$a" \
					"env LD_PRELOAD=${ALIB[$a]} $BIN_DIR/$prog ${rest[*]} -t $t -q" \
					>"$WORK/log/$id.r$r.$a.hf" 2>&1; then
					rm -f "$WORK/hf/$id.r$r.$a.json"
					printf '%s\t%s\t0\tFAIL (during timing, round %s)\n' "$id" "$a" "$r" >>"$WORK/checks.tsv"
					say "FAIL: $id under $a failed during timing (see $WORK/log/$id.r$r.$a.hf)"
				fi
			done
		fi
	done
	say "[$i/$NCFG] $id: $(python3 "$BENCH_DIR/report.py" progress "$WORK" "$id")"
done

# --------------------------------------------------------------- callgrind
if [ "$DO_CALLGRIND" = 1 ] && { [ -z "$ONLY_WORKLOADS" ] || [[ ",$ONLY_WORKLOADS," == *",fastpath"* ]] || [ "$MODE" = main-job ]; }; then
	N1=200000 N2=2200000
	: >"$WORK/callgrind.tsv"
	for a in null "${ALLOCS[@]}"; do
		if [ "$a" = null ]; then lib= mode=null; else lib=${ALIB[$a]} mode=pairs; fi
		line="$a"
		for n in $N1 $N2; do
			out="$WORK/log/callgrind-$a-$n.out"
			if LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file="$out" \
				"$BIN_DIR/fastpath" -m "$mode" -q -n "$n" >/dev/null 2>"$WORK/log/callgrind-$a-$n.err"; then
				ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out" | head -1)
			else
				ir=
			fi
			line="$line	$n	${ir:-NA}"
		done
		printf '%s\n' "$line" >>"$WORK/callgrind.tsv"
		say "callgrind $a: $(awk -F'\t' '$3 != "NA" && $5 != "NA" {printf "%.1f instructions per pair", ($5-$3)/($4-$2)}' <<<"$line")"
	done
fi

# ------------------------------------------------------------------ memory
if [ "$DO_MEMORY" = 1 ] && { [ -z "$ONLY_WORKLOADS" ] || [[ ",$ONLY_WORKLOADS," == *",memory,"* ]]; }; then
	: >"$WORK/memory.tsv"
	# with malloc_trim(0) after the free, then without it (-x: what the
	# allocator gives back on its own during the light work), then idle
	# (-i: no allocator call at all for 2 s after the free)
	for variant in trim notrim idle; do
		for a in "${ALLOCS[@]}"; do
			opt=
			[ $variant = notrim ] && opt=-x
			[ $variant = idle ] && opt="-i -d 2"
			if line=$(LD_PRELOAD=${ALIB[$a]} "$BIN_DIR/memory" -q $opt 2>"$WORK/log/memory-$a-$variant.err"); then
				printf '%s\t%s\n' "$a" "$line" >>"$WORK/memory.tsv"
				say "memory $a ($variant): $(tr ' ' '\n' <<<"$line" | grep -E '^(peak|freed|trimmed|light)_kib' | tr '\n' ' ')"
			else
				printf '%s\tFAIL %s\n' "$a" "$(head -c 300 "$WORK/log/memory-$a-$variant.err" | tr '\n\t' '  ')" >>"$WORK/memory.tsv"
				say "FAIL: memory under $a ($variant): $(head -c 300 "$WORK/log/memory-$a-$variant.err")"
			fi
		done
	done
fi

# ------------------------------------------------------------------ report
if [ "$MODE" = main-job ]; then
	python3 "$BENCH_DIR/report.py" console "$WORK"
else
	mkdir -p "$OUT_DIR"
	python3 "$BENCH_DIR/report.py" write "$WORK" "$OUT_DIR" || die "report failed"
	if command -v gnuplot >/dev/null; then
		if gnuplot "$WORK/ratios.gp" 2>"$WORK/log/gnuplot.err"; then
			say "chart: $OUT_DIR/ratios.png"
		else
			say "gnuplot failed: $(head -c 300 "$WORK/log/gnuplot.err")"
		fi
	else
		say "gnuplot not installed: no chart (apt-get install gnuplot-nox)"
	fi
	say "report: $OUT_DIR/latest.md"
fi
say "done in $(elapsed)"
if grep -q FAIL "$WORK/checks.tsv" 2>/dev/null; then
	echo "some allocators failed a workload's checks: see the FAIL lines above" >&2
	exit 3
fi
exit 0
