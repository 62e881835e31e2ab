#!/bin/sh
# smoke.sh - preloads tlmalloc into real programs and compares their output
# with a run on the system allocator.
#
# Usage: tests/smoke.sh [path/to/libtlmalloc.so]
# (default: $TL_BUILDDIR/.libs/libtlmalloc.so, else ./.libs/libtlmalloc.so)
#
# Prints one line per check, "PASS name" or "FAIL name: reason", and ends
# with "smoke: N passed, N failed". Exits non-zero if a check failed.
set -u

lib=${1:-${TL_BUILDDIR:-.}/.libs/libtlmalloc.so}
case $lib in /*) ;; *) lib=$(pwd)/$lib ;; esac

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

work=$(mktemp -d "${TMPDIR:-/tmp}/tlmalloc-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if [ ! -f "$lib" ]; then
    fail preload_library "$lib does not exist"
    echo "smoke: $passed passed, $failed failed"
    exit 1
fi

# The system python, not a version-manager shim (a shim is a shell script
# that would be preloaded too, which is fine but slow and indirect).
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

# Runs a command with tlmalloc preloaded; stderr goes to $work/err.
pre() { env LD_PRELOAD="$lib" "$@" 2>"$work/err"; }

# A preload that fails only prints a warning from the loader, so every
# check also looks for that warning.
preload_failed() { grep -q "cannot be preloaded\|ERROR: ld.so" "$work/err"; }

# 1. The loader maps the library into a preloaded process.
if pre cat /proc/self/maps >"$work/maps" && grep -q "$(basename "$lib")" "$work/maps" && ! preload_failed; then
    pass preload_library
else
    fail preload_library "libtlmalloc is not mapped in a preloaded process: $(head -c 300 "$work/err")"
fi

# 2. python3, allocation heavy (PYTHONMALLOC=malloc sends every Python
# object through malloc/free/realloc), output compared with a plain run.
cat >"$work/alloc.py" <<'EOF'
import hashlib, random, threading

random.seed(12345)
h = hashlib.sha256()

# dicts of strings, grown and shrunk
d = {}
for i in range(300000):
    k = "key%d_%s" % (i, "x" * (i % 40))
    d[k] = [i, str(i) * (i % 7), {"n": i}]
    if i % 3 == 0:
        d.pop("key%d_%s" % (i // 2, "x" * ((i // 2) % 40)), None)
for k in sorted(d)[:: 97]:
    h.update(k.encode())
    h.update(repr(d[k]).encode())

# lists that grow by append and shrink by pop, strings built by join
lists = [[] for _ in range(100)]
for i in range(400000):
    l = lists[random.randrange(100)]
    if l and random.random() < 0.3:
        l.pop(random.randrange(len(l)))
    else:
        l.append("%x" % random.getrandbits(64) * random.randrange(1, 20))
for l in lists:
    h.update("".join(l).encode())

# big strings and bytes: realloc through the large sizes
s = b""
for i in range(2000):
    s += bytes([i % 251]) * random.randrange(1, 5000)
h.update(hashlib.sha256(s).digest())
big = [bytearray(random.randrange(1, 3 << 20)) for _ in range(40)]
h.update(str(sum(len(b) for b in big)).encode())

# threads allocating at once, results combined in a fixed order
res = [None] * 4
def work(t):
    rnd = random.Random(t)
    acc = {}
    for i in range(100000):
        acc[rnd.randrange(50000)] = "v" * rnd.randrange(1, 100)
    res[t] = sum(len(v) for v in acc.values())
ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in ts: t.start()
for t in ts: t.join()
h.update(repr(res).encode())
print(h.hexdigest())
EOF
if PYTHONMALLOC=malloc "$py" "$work/alloc.py" >"$work/py.ref" 2>"$work/py.referr"; then
    if PYTHONMALLOC=malloc pre "$py" "$work/alloc.py" >"$work/py.out" && ! preload_failed; then
        if cmp -s "$work/py.ref" "$work/py.out"; then
            pass python_alloc_heavy
        else
            fail python_alloc_heavy "output differs: $(cat "$work/py.out") vs $(cat "$work/py.ref")"
        fi
    else
        fail python_alloc_heavy "preloaded python failed (status $?): $(tail -c 400 "$work/err")"
    fi
else
    fail python_alloc_heavy "reference run without tlmalloc failed: $(tail -c 300 "$work/py.referr")"
fi

# 3. sort of 2 million lines, plain and parallel numeric.
"$py" - "$work/lines" <<'EOF'
import random, sys
random.seed(7)
words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
with open(sys.argv[1], "w") as f:
    for i in range(2000000):
        f.write("%s %d %s%s\n" % (random.choice(words), random.randrange(10**9),
                                   "q" * random.randrange(0, 30), random.getrandbits(40)))
EOF
LC_ALL=C sort "$work/lines" | sha256sum >"$work/sort.ref"
if LC_ALL=C pre sort "$work/lines" | sha256sum >"$work/sort.out" && ! preload_failed && cmp -s "$work/sort.ref" "$work/sort.out"; then
    pass sort_2M_lines
else
    fail sort_2M_lines "output differs from the unpreloaded sort or sort failed: $(tail -c 300 "$work/err")"
fi
LC_ALL=C sort -k2,2n -k1,1 --parallel=2 -S 50M "$work/lines" | sha256sum >"$work/sortn.ref"
if LC_ALL=C pre sort -k2,2n -k1,1 --parallel=2 -S 50M "$work/lines" | sha256sum >"$work/sortn.out" &&
    ! preload_failed && cmp -s "$work/sortn.ref" "$work/sortn.out"; then
    pass sort_2M_lines_numeric_parallel
else
    fail sort_2M_lines_numeric_parallel "output differs from the unpreloaded sort or sort failed: $(tail -c 300 "$work/err")"
fi

# 4. gcc (driver, cc1, as, collect2, ld all preloaded) compiles a program,
# which then runs preloaded too.
cat >"$work/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

int main(void)
{
    enum { N = 100000 };
    char **v = malloc(N * sizeof *v);
    unsigned long sum = 0;
    for (int i = 0; i < N; i++) {
        v[i] = malloc(32);
        snprintf(v[i], 32, "%08d", (i * 7919) % N);
    }
    qsort(v, N, sizeof *v, cmp);
    for (int i = 0; i < N; i++) {
        sum += (unsigned long)atoi(v[i]) * (unsigned long)(i % 13);
        v[i] = realloc(v[i], 4000);
        free(v[i]);
    }
    free(v);
    printf("sorted %d, first ok %d, sum %lu\n", N, 1, sum);
    return 0;
}
EOF
if pre gcc -O2 -Wall -o "$work/prog" "$work/prog.c" && ! preload_failed; then
    expected=$("$work/prog" 2>&1)
    got=$(pre "$work/prog")
    if [ -n "$expected" ] && [ "$got" = "$expected" ] && ! preload_failed; then
        pass gcc_compile_and_run
    else
        fail gcc_compile_and_run "program output '$got', expected '$expected'"
    fi
else
    fail gcc_compile_and_run "preloaded gcc failed: $(tail -c 400 "$work/err")"
fi

# 5. sqlite3 builds a table of 200k rows with an index, then a checksum.
cat >"$work/db.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, printf('name-%d-%s', x, substr('abcdefghijklmnopqrstuvwxyz', 1, x % 26)),
    (x * 7919) % 100003, zeroblob(x % 300) FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_v ON t(v);
UPDATE t SET v = v + 1 WHERE id % 3 = 0;
DELETE FROM t WHERE id % 17 = 0;
SELECT count(*), sum(v), sum(length(name)), sum(length(blob)), min(name), max(name) FROM t;
SELECT v, count(*) FROM t GROUP BY v % 1000 ORDER BY 2 DESC, 1 LIMIT 5;
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY name DESC LIMIT 50);
EOF
if sqlite3 :memory: <"$work/db.sql" >"$work/db.ref" 2>"$work/db.referr"; then
    if pre sqlite3 :memory: <"$work/db.sql" >"$work/db.out" && ! preload_failed && cmp -s "$work/db.ref" "$work/db.out"; then
        pass sqlite3_200k_rows
    else
        fail sqlite3_200k_rows "output differs or sqlite3 failed: $(tail -c 300 "$work/err")"
    fi
else
    fail sqlite3_200k_rows "reference run failed: $(tail -c 300 "$work/db.referr")"
fi

echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
