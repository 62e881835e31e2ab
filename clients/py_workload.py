#!/usr/bin/env python3
"""Threaded, allocation-heavy Python program used by clients/run.sh.

Run with PYTHONMALLOC=malloc so that every Python object comes from the C
allocator.  Worker threads build dicts, lists, strings and bytes, do JSON
round trips and sorts; producer threads hand objects to consumer threads
through queues, so that memory allocated in one thread is freed in another.
The output is a deterministic digest of all results: it must be identical
with and without the preloaded allocator.

--check LIB: before the work, prove that the library LIB is mapped into this
process; if LIB is libtlmalloc, also require that the symbol tl_malloc
resolves in the global scope (so the preloaded library is the one in use).  Prints "allocator-check ok ..." or exits 3.
"""
import argparse
import ctypes
import hashlib
import json
import os
import queue
import random
import sys
import threading
import time
import zlib


def check_allocator(lib):
    # /proc/self/maps shows the real file: .libs/libtlmalloc.so is a symlink
    base = os.path.basename(os.path.realpath(lib))
    mapped = False
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]) == base:
                mapped = True
    if not mapped:
        print("allocator-check: %s is not mapped in python (pid %d)" % (base, os.getpid()))
        sys.exit(3)
    me = ctypes.CDLL(None)
    extra = ""
    if os.path.basename(lib).startswith("libtlmalloc") or base.startswith("libtlmalloc"):
        try:
            me.tl_malloc
        except AttributeError:
            print("allocator-check: tl_malloc does not resolve")
            sys.exit(3)
        extra = ", tl_malloc resolves"
    print("allocator-check ok: %s mapped%s" % (base, extra))


def rand_word(r, lo=1, hi=24):
    return "".join(chr(97 + r.randrange(26)) for _ in range(r.randint(lo, hi)))


def worker(idx, rounds, out):
    """Independent work of one thread; result digest goes to out[idx]."""
    r = random.Random(1000 + idx)
    h = hashlib.sha256()
    for rd in range(rounds):
        # dict of records with nested lists and strings
        recs = {}
        for j in range(2000):
            k = "%s-%d-%d" % (rand_word(r), idx, j)
            recs[k] = {
                "id": j, "name": rand_word(r, 3, 40), "tags": [rand_word(r) for _ in range(r.randint(0, 8))],
                "score": r.random() * 1000, "blob": r.randbytes(r.randint(0, 3000)).hex()[: r.randint(0, 500)],
                "n": [r.randint(-10**12, 10**12) for _ in range(r.randint(0, 20))],
            }
        # JSON round trip
        text = json.dumps(recs, sort_keys=True)
        back = json.loads(text)
        if back != recs:
            raise RuntimeError("json round trip differs in thread %d" % idx)
        h.update(hashlib.sha256(text.encode()).digest())
        # sorting of strings and tuples
        names = sorted(v["name"] for v in recs.values())
        tuples = sorted((v["score"], v["name"], len(v["tags"])) for v in recs.values())
        h.update("|".join(names[:: max(1, len(names) // 50)]).encode())
        h.update(repr(tuples[:10]).encode())
        # bytes building, growing and slicing (realloc paths)
        buf = bytearray()
        for j in range(3000):
            buf += r.randbytes(r.randint(0, 700))
            if j % 97 == 0:
                del buf[: len(buf) // 3]
        h.update(zlib.crc32(bytes(buf)).to_bytes(4, "little"))
        # list churn: many small objects, then delete most of them
        churn = [[rand_word(r, 1, 8)] * r.randint(1, 30) for _ in range(20000)]
        del churn[::2]
        h.update(str(sum(len(x) for x in churn)).encode())
        # string joins and splits
        s = " ".join(rand_word(r) for _ in range(20000))
        parts = s.split(" ")
        h.update(str(len(parts)).encode() + s[:64].encode())
        del recs, back, text, names, tuples, buf, churn, s, parts
    out[idx] = h.hexdigest()


def producer(idx, items, q):
    r = random.Random(5000 + idx)
    for j in range(items):
        obj = {"p": idx, "j": j, "s": rand_word(r, 1, 200) * r.randint(1, 20),
               "l": [r.random() for _ in range(r.randint(0, 100))], "b": r.randbytes(r.randint(0, 4096))}
        q.put(obj, timeout=60)
    q.put(None, timeout=60)


def consumer(q, producers, acc, idx):
    done = 0
    total = 0
    count = 0
    while done < producers:
        obj = q.get(timeout=60)
        if obj is None:
            done += 1
            continue
        data = json.dumps({"p": obj["p"], "j": obj["j"], "s": obj["s"], "l": obj["l"],
                           "b": obj["b"].hex()}, sort_keys=True).encode()
        total = (total + zlib.crc32(data)) & 0xFFFFFFFFFFFFFFFF
        count += 1
        del obj, data
    acc[idx] = (total, count)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", metavar="LIB")
    ap.add_argument("--threads", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--items", type=int, default=15000)
    args = ap.parse_args()
    if args.check:
        check_allocator(args.check)
    t0 = time.monotonic()
    out = [None] * args.threads
    ths = [threading.Thread(target=worker, args=(i, args.rounds, out)) for i in range(args.threads)]
    # Cross-thread frees: 3 producers feed one queue read by 2 consumers.
    q = queue.Queue(maxsize=256)
    acc = [None, None]
    nprod = 3
    prods = [threading.Thread(target=producer, args=(i, args.items, q)) for i in range(nprod)]
    # Each consumer stops after seeing the end marker of some producers; the
    # markers are split between them by sending each consumer its share.
    cons = [threading.Thread(target=consumer, args=(q, 2 if i == 0 else 1, acc, i)) for i in range(2)]
    for t in ths + prods + cons:
        t.start()
    for t in ths + prods + cons:
        t.join(600)
    if any(t.is_alive() for t in ths + prods + cons) or None in out or None in acc:
        print("FAILED: a thread did not finish")
        sys.exit(2)
    total = sum(a[0] for a in acc) & 0xFFFFFFFFFFFFFFFF
    count = sum(a[1] for a in acc)
    for i, d in enumerate(out):
        print("thread %d %s" % (i, d))
    print("queue items %d checksum %d" % (count, total))
    print("digest %s" % hashlib.sha256("".join(out).encode() + str((count, total)).encode()).hexdigest())
    print("seconds %.2f" % (time.monotonic() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
