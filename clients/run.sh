#!/usr/bin/env bash
# Real-client checks of tlmalloc: run programs from Debian's packages with
# the allocator library preloaded, drive them on 127.0.0.1 only, and verify
# that nothing was lost or corrupted.  See clients/README.md.
#
# usage: clients/run.sh [--compare] [--results FILE] [--only LIST] [LIB]
#   LIB          the allocator library to preload (default: $TLMALLOC_LIB,
#                then .libs/libtlmalloc.so of the source tree)
#   --compare    run every client under no preload, LIB and jemalloc (when
#                installed), and write a markdown table of throughput and
#                peak RSS to FILE (default: clients/results.md)
#   --only LIST  comma-separated subset of: memcached,redis,python,sqlite
#
# Prints one line per check: "PASS name (details)", "FAIL name (reason)" or
# "SKIP name (reason)", then "N passed, N failed" (", N skipped" when some
# were skipped).  Exits 1 if a check failed, 2 on a usage error.

set -u
unset LD_PRELOAD
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
COMPARE=0
RESULTS="$HERE/results.md"
ONLY="memcached,redis,python,sqlite"
LIB="${TLMALLOC_LIB:-}"
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2

while [ $# -gt 0 ]; do
	case "$1" in
	--compare) COMPARE=1 ;;
	--results) RESULTS="$2"; shift ;;
	--results=*) RESULTS="${1#*=}" ;;
	--only) ONLY="$2"; shift ;;
	--only=*) ONLY="${1#*=}" ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) LIB="$1" ;;
	esac
	shift
done
[ -n "$LIB" ] || LIB="$HERE/../.libs/libtlmalloc.so"
if [ ! -f "$LIB" ]; then
	echo "FAIL setup (allocator library not found: $LIB; build it or pass its path)"
	echo "0 passed, 1 failed"
	exit 1
fi
LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")
LIBBASE=$(basename "$LIB")
case "$LIBBASE" in
libtlmalloc*) LIBLABEL=tlmalloc ;;
libjemalloc*) LIBLABEL=jemalloc ;;
*) LIBLABEL=${LIBBASE%%.so*} ;;
esac

# Time limits (seconds).  Every program and client runs under `timeout`.
SERVER_LIFE=600     # a server stops by itself after this, whatever happens
CLIENT_LIMIT=200    # one client run
PROGRAM_LIMIT=240   # one python or sqlite run
BENCH_REPEAT=3      # redis-benchmark runs per allocator in --compare mode

# The Python under test is Debian's; clients use the same interpreter but
# never get the preload.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)

TMPD=$(mktemp -d /tmp/tlmalloc-clients.XXXXXX)
KEEP_TMP=0
SERVER_TPIDS=()
CHILD=         # timeout(1) pid of the client or program running now
PASSED=0
FAILED=0
SKIPPED=0
declare -A R   # results: R["client|allocator|metric"]=value

cleanup() {
	local p
	[ -n "$CHILD" ] && kill -TERM -- "-$CHILD" 2>/dev/null
	for p in "${SERVER_TPIDS[@]}"; do
		# timeout(1) leads its own process group: stop the whole group
		kill -TERM -- "-$p" 2>/dev/null
	done
	for p in "${SERVER_TPIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$p" 2>/dev/null
	done
	if [ "$KEEP_TMP" = 1 ]; then
		echo "logs kept in $TMPD" >&2
	else
		rm -rf "$TMPD"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

pass() { echo "PASS $1 ($2)"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1 ($2)"; FAILED=$((FAILED + 1)); KEEP_TMP=1; }
skip() { echo "SKIP $1 ($2)"; SKIPPED=$((SKIPPED + 1)); }

want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

free_port() {
	env -u LD_PRELOAD timeout 10 "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# run_bg CMD...: run CMD (which starts with timeout) in the background and
# wait for it, so that a signal to this script is handled at once and the
# cleanup can stop CMD's process group.
run_bg() {
	"$@" &
	CHILD=$!
	wait "$CHILD"
	local rc=$?
	CHILD=
	return $rc
}

# client: run a helper program without preload, bounded in time
client() { run_bg timeout -k 5 "$CLIENT_LIMIT" env -u LD_PRELOAD "$@"; }

# json_get FILE KEY: a field of the last JSON line of FILE
json_get() {
	env -u LD_PRELOAD "$PY" -c 'import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
v = json.loads(lines[-1]).get(sys.argv[2]) if lines else None
print("; ".join(map(str, v)) if isinstance(v, list) else v)' "$1" "$2" 2>/dev/null
}

kib_to_mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024 }'; }

# start_server NAME PRELOAD CMD...: start a server in the background under
# timeout; sets SRV_TPID (timeout's pid) and SRV_PID (the server's pid).
start_server() {
	local name=$1 preload=$2
	shift 2
	SRV_LOG="$TMPD/$name.log"
	if [ -n "$preload" ]; then
		timeout -k 5 "$SERVER_LIFE" env LD_PRELOAD="$preload" "$@" >"$SRV_LOG" 2>&1 &
	else
		timeout -k 5 "$SERVER_LIFE" "$@" >"$SRV_LOG" 2>&1 &
	fi
	SRV_TPID=$!
	SERVER_TPIDS+=("$SRV_TPID")
	SRV_PID=
	local i
	for i in $(seq 1 100); do
		SRV_PID=$(cat "/proc/$SRV_TPID/task/$SRV_TPID/children" 2>/dev/null | awk '{print $1}')
		[ -n "$SRV_PID" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_port PORT: wait until the server accepts connections (bounded)
wait_port() {
	local i
	for i in $(seq 1 150); do
		kill -0 "$SRV_PID" 2>/dev/null || return 1
		if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# mapped_name LIB: the file name under which LIB shows in /proc/PID/maps
# (the basename of its real path: .libs/libtlmalloc.so is a symlink)
mapped_name() { basename "$(readlink -f "$1")"; }

# in_use PID LIB: LIB must be mapped into process PID
in_use() {
	[ -z "$2" ] && return 0
	awk -v b="$(mapped_name "$2")" '{ n = split($6, p, "/"); if (n && p[n] == b) f = 1 }
		END { exit !f }' "/proc/$1/maps" 2>/dev/null
}

peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# stop_server: SIGTERM, wait (bounded), require a clean exit status
stop_server() {
	local i rc
	kill -TERM "$SRV_PID" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SRV_PID" 2>/dev/null; then
		kill -KILL -- "-$SRV_TPID" 2>/dev/null
		wait "$SRV_TPID" 2>/dev/null
		STOP_MSG="server did not stop within 10 s of SIGTERM"
		return 1
	fi
	wait "$SRV_TPID"
	rc=$?
	local keep=()
	for i in "${SERVER_TPIDS[@]}"; do [ "$i" != "$SRV_TPID" ] && keep+=("$i"); done
	SERVER_TPIDS=("${keep[@]+"${keep[@]}"}")
	case $rc in
	0|143) return 0 ;;
	*) STOP_MSG="server exited with status $rc at shutdown"; return 1 ;;
	esac
}

log_tail() { [ -f "$1" ] && tail -n 5 "$1" | tr '\n' ' ' | cut -c1-300; }

# measure OUTFILE CMD...: run CMD with timeout, record "seconds maxrss_kib"
measure() {
	local out=$1
	shift
	if [ -x /usr/bin/time ]; then
		run_bg timeout -k 5 "$PROGRAM_LIMIT" /usr/bin/time -f '%e %M' -o "$out" "$@"
	else
		run_bg timeout -k 5 "$PROGRAM_LIMIT" env -u LD_PRELOAD "$PY" -c 'import resource, subprocess, sys, time
t = time.monotonic(); rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.2f %d\n" % (time.monotonic() - t, ru.ru_maxrss)); sys.exit(rc)' "$out" "$@"
	fi
}

# ---------------------------------------------------------------- memcached
check_memcached() {   # ALLOC PRELOAD
	local alloc=$1 preload=$2 name="memcached[$1]" port out user=()
	[ "$COMPARE" = 0 ] && name=memcached
	if ! command -v memcached >/dev/null; then skip "$name" "memcached not installed"; return; fi
	[ "$(id -u)" = 0 ] && user=(-u root)
	port=$(free_port)
	if ! start_server "memcached-$alloc" "$preload" memcached "${user[@]}" -l 127.0.0.1 -p "$port" \
		-U 0 -t 4 -m 512 -I 1m -c 1024; then
		fail "$name" "server did not start: $(log_tail "$SRV_LOG")"; return
	fi
	if ! wait_port "$port"; then
		fail "$name" "server not listening on port $port: $(log_tail "$SRV_LOG")"; return
	fi
	if ! in_use "$SRV_PID" "$preload"; then
		fail "$name" "$(mapped_name "$preload") is not mapped in memcached (pid $SRV_PID)"; stop_server; return
	fi
	out="$TMPD/mc-client-$alloc.json"
	client "$PY" "$HERE/mc_client.py" --port "$port" --keys 100000 --threads 8 \
		--time-limit $((CLIENT_LIMIT - 20)) >"$out" 2>"$out.err"
	local rc=$? rss
	rss=$(peak_rss_kib "$SRV_PID")
	if ! kill -0 "$SRV_PID" 2>/dev/null; then
		wait "$SRV_TPID" 2>/dev/null
		fail "$name" "memcached died during the run (status $?), log $SRV_LOG: $(log_tail "$SRV_LOG")"; return
	fi
	if ! stop_server; then fail "$name" "$STOP_MSG"; return; fi
	if [ $rc -ne 0 ]; then
		fail "$name" "client status $rc: $(json_get "$out" errors) $(log_tail "$out.err")"; return
	fi
	R["memcached|$alloc|set"]=$(json_get "$out" set_per_sec)
	R["memcached|$alloc|get"]=$(json_get "$out" get_per_sec)
	R["memcached|$alloc|ops"]=$(json_get "$out" ops_per_sec)
	R["memcached|$alloc|rss"]=$rss
	pass "$name" "$(json_get "$out" keys) keys of 1 B..500 KiB stored, $(json_get "$out" live) live after churn, all verified, $(json_get "$out" ops_per_sec) ops/s, peak RSS $(kib_to_mib "$rss") MiB"
}

# -------------------------------------------------------------------- redis
check_redis() {   # ALLOC PRELOAD
	local alloc=$1 preload=$2 name="redis[$1]" port out bench
	[ "$COMPARE" = 0 ] && name=redis
	for p in redis-server redis-benchmark; do
		if ! command -v $p >/dev/null; then skip "$name" "$p not installed"; return; fi
	done
	port=$(free_port)
	if ! start_server "redis-$alloc" "$preload" redis-server --port "$port" --bind 127.0.0.1 \
		--io-threads 2 --io-threads-do-reads yes --save '' --appendonly no \
		--daemonize no --protected-mode yes --dir "$TMPD"; then
		fail "$name" "server did not start: $(log_tail "$SRV_LOG")"; return
	fi
	if ! wait_port "$port"; then
		fail "$name" "server not listening on port $port: $(log_tail "$SRV_LOG")"; return
	fi
	if ! in_use "$SRV_PID" "$preload"; then
		fail "$name" "$(mapped_name "$preload") is not mapped in redis-server (pid $SRV_PID)"; stop_server; return
	fi
	# redis-benchmark is noisy on 2 cores (io-threads spin): in --compare
	# mode it runs BENCH_REPEAT times and the median of each test is kept.
	# A check run needs the traffic, not the figure: 20,000 requests a test
	# take seconds, where 100,000 took 27 s beside one make check and over
	# CLIENT_LIMIT beside two (status 124 with no result).
	local brc=0 t v bad='' n=1 requests=20000
	[ "$COMPARE" = 1 ] && n=$BENCH_REPEAT requests=100000
	bench="$TMPD/redis-bench-$alloc.csv"
	: >"$bench"
	for _ in $(seq 1 "$n"); do
		client redis-benchmark -h 127.0.0.1 -p "$port" -t set,get,lpush,lpop -n "$requests" -c 50 \
			--threads 2 -r 100000 -d 64 --csv >>"$bench" 2>"$bench.err" || brc=$?
	done
	for t in SET GET LPUSH LPOP; do
		v=$(awk -F'"' -v t="$t" '$2 == t { print $4 }' "$bench" | sort -n |
			awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }')
		R["redis|$alloc|$t"]=${v%.*}
		case "$v" in ''|0|0.00) bad="$bad $t" ;; esac
	done
	out="$TMPD/redis-client-$alloc.json"
	client "$PY" "$HERE/redis_client.py" --port "$port" --keys 50000 --threads 4 \
		--time-limit $((CLIENT_LIMIT - 20)) >"$out" 2>"$out.err"
	local rc=$? rss
	rss=$(peak_rss_kib "$SRV_PID")
	if ! kill -0 "$SRV_PID" 2>/dev/null; then
		wait "$SRV_TPID" 2>/dev/null
		fail "$name" "redis-server died during the run (status $?), log $SRV_LOG: $(log_tail "$SRV_LOG")"; return
	fi
	if ! stop_server; then fail "$name" "$STOP_MSG: $(log_tail "$SRV_LOG")"; return; fi
	if [ $brc -ne 0 ] || [ -n "$bad" ]; then
		fail "$name" "redis-benchmark status $brc, no result for:${bad:- -} $(log_tail "$bench.err")"; return
	fi
	if [ $rc -ne 0 ]; then
		fail "$name" "read-back client status $rc: $(json_get "$out" errors) $(log_tail "$out.err")"; return
	fi
	R["redis|$alloc|readback"]=$(json_get "$out" ops_per_sec)
	R["redis|$alloc|rss"]=$rss
	pass "$name" "redis-benchmark SET ${R[redis|$alloc|SET]} GET ${R[redis|$alloc|GET]} LPUSH ${R[redis|$alloc|LPUSH]} LPOP ${R[redis|$alloc|LPOP]} req/s; $(json_get "$out" keys) keys written, $(json_get "$out" dbsize) live after churn, all verified, DBSIZE ok; peak RSS $(kib_to_mib "$rss") MiB"
}

# ------------------------------------------------------------------- python
PY_REF=
run_python() {   # ALLOC PRELOAD OUT: one run of the workload
	local alloc=$1 preload=$2 out=$3
	if [ -n "$preload" ]; then
		measure "$out.time" env -u LD_PRELOAD PYTHONMALLOC=malloc PYTHONHASHSEED=0 LD_PRELOAD="$preload" \
			"$PY" "$HERE/py_workload.py" --check "$preload" >"$out" 2>"$out.err"
	else
		measure "$out.time" env -u LD_PRELOAD PYTHONMALLOC=malloc PYTHONHASHSEED=0 \
			"$PY" "$HERE/py_workload.py" >"$out" 2>"$out.err"
	fi
}

python_reference() {
	[ -n "$PY_REF" ] && return 0
	PY_REF="$TMPD/python-ref.out"
	run_python none "" "$PY_REF" || return 1
	R["python|none|secs"]=$(tail -n 1 "$PY_REF.time" | awk '{print $1}')
	R["python|none|rss"]=$(tail -n 1 "$PY_REF.time" | awk '{print $2}')
}

check_python() {   # ALLOC PRELOAD
	local alloc=$1 preload=$2 name="python[$1]" out rc
	[ "$COMPARE" = 0 ] && name=python
	if [ -z "$PY" ]; then skip "$name" "python3 not installed"; return; fi
	if ! python_reference; then
		fail "$name" "reference run without preload failed: $(log_tail "$PY_REF.err")"; return
	fi
	if [ -z "$preload" ]; then
		pass "$name" "reference run, $(grep -c '^thread' "$PY_REF") threads, ${R[python|none|secs]} s, peak RSS $(kib_to_mib "${R[python|none|rss]}") MiB"
		return
	fi
	out="$TMPD/python-$alloc.out"
	run_python "$alloc" "$preload" "$out"
	rc=$?
	if ! head -n 1 "$out" | grep -q '^allocator-check ok'; then
		fail "$name" "allocator check: $(head -n 1 "$out") $(log_tail "$out.err")"; return
	fi
	if [ $rc -ne 0 ]; then
		fail "$name" "python exited with status $rc: $(log_tail "$out.err")"; return
	fi
	if ! tail -n +2 "$out" | cmp -s - "$PY_REF"; then
		fail "$name" "output differs from the run without preload (see $out)"; return
	fi
	R["python|$alloc|secs"]=$(tail -n 1 "$out.time" | awk '{print $1}')
	R["python|$alloc|rss"]=$(tail -n 1 "$out.time" | awk '{print $2}')
	pass "$name" "$(head -n 1 "$out" | sed 's/^allocator-check ok: //'); output identical to the run without preload, ${R[python|$alloc|secs]} s, peak RSS $(kib_to_mib "${R[python|$alloc|rss]}") MiB"
}

# ------------------------------------------------------------------- sqlite
SQL_REF=
run_sqlite() {   # ALLOC PRELOAD OUT
	local alloc=$1 preload=$2 out=$3 db="$TMPD/sqlite-$1.db" script="$TMPD/sqlite-$1.sql"
	rm -f "$db"
	: >"$script"
	if [ -n "$preload" ]; then
		# .system runs "sh -c CMD" as a child of sqlite3: $PPID is the
		# sqlite3 process doing the work, so its maps and exe prove the
		# library is loaded into sqlite3 itself.
		{
			echo ".system grep -c -F /$(mapped_name "$preload") /proc/\$PPID/maps > $out.check"
			echo ".system readlink /proc/\$PPID/exe >> $out.check"
		} >"$script"
	fi
	cat "$HERE/sqlite_workload.sql" >>"$script"
	if [ -n "$preload" ]; then
		measure "$out.time" env LD_PRELOAD="$preload" sqlite3 -bail "$db" ".read $script" >"$out" 2>"$out.err"
	else
		measure "$out.time" sqlite3 -bail "$db" ".read $script" >"$out" 2>"$out.err"
	fi
	local rc=$?
	rm -f "$db"
	return $rc
}

sqlite_reference() {
	[ -n "$SQL_REF" ] && return 0
	SQL_REF="$TMPD/sqlite-ref.out"
	run_sqlite none "" "$SQL_REF" || return 1
	R["sqlite|none|secs"]=$(tail -n 1 "$SQL_REF.time" | awk '{print $1}')
	R["sqlite|none|rss"]=$(tail -n 1 "$SQL_REF.time" | awk '{print $2}')
}

integrity_ok() { awk 'f { print; exit } /^== integrity$/ { f = 1 }' "$1" | grep -qx ok; }

check_sqlite() {   # ALLOC PRELOAD
	local alloc=$1 preload=$2 name="sqlite[$1]" out rc
	[ "$COMPARE" = 0 ] && name=sqlite
	if ! command -v sqlite3 >/dev/null; then skip "$name" "sqlite3 not installed"; return; fi
	if ! sqlite_reference; then
		fail "$name" "reference run without preload failed: $(log_tail "$SQL_REF.err")"; return
	fi
	if ! integrity_ok "$SQL_REF"; then
		fail "$name" "PRAGMA integrity_check not ok in the reference run"; return
	fi
	if [ -z "$preload" ]; then
		pass "$name" "reference run, 2 tables of 300000 rows, integrity ok, ${R[sqlite|none|secs]} s, peak RSS $(kib_to_mib "${R[sqlite|none|rss]}") MiB"
		return
	fi
	out="$TMPD/sqlite-$alloc.out"
	run_sqlite "$alloc" "$preload" "$out"
	rc=$?
	local n exe
	n=$(head -n 1 "$out.check" 2>/dev/null)
	exe=$(sed -n 2p "$out.check" 2>/dev/null)
	if [ "$(basename "${exe:-none}")" != sqlite3 ] || [ "${n:-0}" -lt 1 ] 2>/dev/null; then
		fail "$name" "allocator check: $(mapped_name "$preload") not mapped in the sqlite3 process (maps lines: ${n:-none}, exe: ${exe:-none})"; return
	fi
	if [ $rc -ne 0 ]; then
		fail "$name" "sqlite3 exited with status $rc: $(log_tail "$out.err")"; return
	fi
	if ! integrity_ok "$out"; then
		fail "$name" "PRAGMA integrity_check did not return ok"; return
	fi
	if ! cmp -s "$out" "$SQL_REF"; then
		fail "$name" "results differ from the run without preload (see $out)"; return
	fi
	R["sqlite|$alloc|secs"]=$(tail -n 1 "$out.time" | awk '{print $1}')
	R["sqlite|$alloc|rss"]=$(tail -n 1 "$out.time" | awk '{print $2}')
	pass "$name" "$(mapped_name "$preload") mapped in sqlite3; results identical to the run without preload, integrity ok, ${R[sqlite|$alloc|secs]} s, peak RSS $(kib_to_mib "${R[sqlite|$alloc|rss]}") MiB"
}

# ------------------------------------------------------------------ results
write_results() {   # ALLOCS...
	local a out=$RESULTS tmp
	tmp="$TMPD/results.md"
	cell() { local v=${R["$1"]:-}; echo "${v:--}"; }
	mib() { kib_to_mib "${R["$1"]:-}"; }
	{
		echo "# Real clients: throughput and peak RSS"
		echo
		echo "Written by \`clients/run.sh --compare\` on $(date -u '+%Y-%m-%d %H:%M UTC'):" \
			"$(nproc) cores, $(uname -sr), load average at start $LOAD0."
		echo "One run per cell (redis-benchmark: median of $BENCH_REPEAT runs), so differences of a"
		echo "few percent are noise; the machine may have been busy with other work."
		echo "Library under test: \`$LIB\` ($(mapped_name "$LIB"), sha256 $(sha256sum <"$LIB" | cut -c1-12), built $(date -u -r "$(readlink -f "$LIB")" '+%Y-%m-%d %H:%M UTC'))."
		echo
		printf '| client | metric'
		for a in "$@"; do printf ' | %s' "$a"; done
		echo " |"
		printf '| --- | ---'
		for a in "$@"; do printf ' | ---:'; done
		echo " |"
		row() {   # CLIENT METRIC LABEL KIND
			printf '| %s | %s' "$1" "$3"
			for a in "${ALLOCS[@]}"; do
				if [ "$4" = mib ]; then printf ' | %s' "$(mib "$1|$a|$2")"; else printf ' | %s' "$(cell "$1|$a|$2")"; fi
			done
			echo " |"
		}
		row memcached set "set, keys/s (client)" n
		row memcached get "get, keys/s (client)" n
		row memcached ops "all ops/s (client)" n
		row memcached rss "peak RSS, MiB" mib
		row redis SET "SET req/s (redis-benchmark)" n
		row redis GET "GET req/s (redis-benchmark)" n
		row redis LPUSH "LPUSH req/s (redis-benchmark)" n
		row redis LPOP "LPOP req/s (redis-benchmark)" n
		row redis readback "write+verify ops/s (client)" n
		row redis rss "peak RSS, MiB" mib
		row python secs "seconds" n
		row python rss "peak RSS, MiB" mib
		row sqlite secs "seconds" n
		row sqlite rss "peak RSS, MiB" mib
		echo
		echo "Columns: \`none\` is no preload: glibc malloc for memcached, python3 and sqlite3, but"
		echo "jemalloc for redis-server, which Debian links against libjemalloc."
		echo "Under a preload, redis-server's malloc, free, realloc, calloc and malloc_usable_size"
		echo "come from the preloaded library (it is first in the symbol search order)."
		echo
		echo "Workloads: memcached 1.6 with 4 threads (-t 4 -m 512 -I 1m), 8 client threads storing"
		echo "100000 keys of 1 B..500 KiB, reading all back, overwriting and deleting a part, reading all"
		echo "again; redis-server 7.0 with io-threads 2, redis-benchmark -n 100000 -c 50 --threads 2"
		echo "-r 100000 -d 64, then 4 client threads writing 50000 keys of 1 B..256 KiB with churn and"
		echo "reading all back; python3 with PYTHONMALLOC=malloc, 6 worker threads plus 3 producers and"
		echo "2 consumers (cross-thread frees); sqlite3 building two 300000-row tables, indexes, joins,"
		echo "group by, window functions, updates, deletes and VACUUM.  Peak RSS is VmHWM of the server"
		echo "just before it stops, or the maximum resident size of the python3/sqlite3 process."
		echo "Client throughput is bounded by the Python clients as much as by the server."
	} >"$tmp"
	cp "$tmp" "$out" && echo "results written to $out"
}

# --------------------------------------------------------------------- main
echo "tlmalloc real-client checks: library $LIB"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$COMPARE" = 1 ]; then
	ALLOCS=(none "$LIBLABEL")
	declare -A PRELOAD_OF=([none]="" ["$LIBLABEL"]="$LIB")
	if [ -f "$JEMALLOC" ] && [ "$LIBLABEL" != jemalloc ]; then
		ALLOCS+=(jemalloc)
		PRELOAD_OF[jemalloc]=$JEMALLOC
	fi
	for c in memcached redis python sqlite; do
		want $c || continue
		for a in "${ALLOCS[@]}"; do
			"check_$c" "$a" "${PRELOAD_OF[$a]}"
		done
	done
	write_results "${ALLOCS[@]}"
else
	for c in memcached redis python sqlite; do
		want $c || continue
		"check_$c" "$LIBLABEL" "$LIB"
	done
fi

if [ "$SKIPPED" -gt 0 ]; then
	echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
	echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ]
