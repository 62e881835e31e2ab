#!/usr/bin/env python3
"""Multithreaded memcached text-protocol client used by clients/run.sh.

Stores many keys of varied sizes (1 B .. 500 KiB) whose values are derived
from the key, reads every one back and verifies it, then overwrites and
deletes a part of them and verifies everything again.  Connects to
127.0.0.1 only.  Prints one JSON line with the counts and the rates; exits
non-zero if anything was lost or corrupted.
"""
import argparse
import json
import random
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
MAX_VALUE = 500 * 1024
BATCH_BYTES = 2 * 1024 * 1024   # bytes of values per pipelined batch
BATCH_KEYS = 100                # keys per pipelined batch


def value_size(i, gen):
    """Size of key i in generation gen: mostly small, a few large."""
    h = (i * 2654435761 + gen * 40503) & 0xFFFFFFFF
    h2 = (h * 2246822519 + 3266489917) & 0xFFFFFFFF
    b = h % 1000
    if b < 900:
        return 1 + h2 % 1024
    if b < 990:
        return 1025 + h2 % 7168
    if b < 999:
        return 8193 + h2 % (128 * 1024 - 8192)
    return 128 * 1024 + h2 % (MAX_VALUE - 128 * 1024 + 1)


def key_name(i):
    return "tl:%d" % i


# Values are slices of a fixed pseudo-random pool at an offset derived from
# the key, prefixed with the key and generation, so that a value swapped
# between keys, truncated or overwritten is detected.
POOL = random.Random(20240611).randbytes(2 * MAX_VALUE)


def value_of(i, gen):
    n = value_size(i, gen)
    off = (i * 40503 + gen * 9973) % MAX_VALUE
    head = b"%d/%d:" % (gen, i)
    return (head + POOL[off:off + n])[:n]


class Conn:
    def __init__(self, port, timeout):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb", buffering=1 << 20)

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        s = self.rf.readline()
        if not s.endswith(b"\r\n"):
            raise IOError("connection closed or short line: %r" % s[:80])
        return s[:-2]

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass


def batches(keys, gen_of):
    """Split keys into pipelined batches bounded in count and bytes."""
    cur, size = [], 0
    for i in keys:
        n = value_size(i, gen_of(i))
        if cur and (len(cur) >= BATCH_KEYS or size + n > BATCH_BYTES):
            yield cur
            cur, size = [], 0
        cur.append(i)
        size += n
    if cur:
        yield cur


class Worker(threading.Thread):
    def __init__(self, wid, args, keys, state, deadline):
        super().__init__(daemon=True)
        self.wid, self.args, self.keys = wid, args, keys
        self.state = state          # dict: i -> gen (0 = deleted)
        self.deadline = deadline
        self.errors = []
        self.sets = self.gets = self.deletes = 0
        self.phase_time = {}

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    def check_time(self):
        if time.monotonic() > self.deadline:
            raise TimeoutError("client time limit reached")

    def do_sets(self, c, keys, gen_of):
        for batch in batches(keys, gen_of):
            self.check_time()
            parts = []
            for i in batch:
                v = value_of(i, gen_of(i))
                parts.append(b"set %s %d 0 %d\r\n" % (key_name(i).encode(), len(v), len(v)))
                parts.append(v)
                parts.append(b"\r\n")
            c.send(b"".join(parts))
            for i in batch:
                r = c.line()
                self.sets += 1
                if r != b"STORED":
                    self.err("set %s: %r" % (key_name(i), r[:80]))

    def do_deletes(self, c, keys):
        for k in range(0, len(keys), BATCH_KEYS):
            self.check_time()
            batch = keys[k:k + BATCH_KEYS]
            c.send(b"".join(b"delete %s\r\n" % key_name(i).encode() for i in batch))
            for i in batch:
                r = c.line()
                self.deletes += 1
                if r != b"DELETED":
                    self.err("delete %s: %r" % (key_name(i), r[:80]))

    def do_verify(self, c, keys):
        for batch in batches(keys, lambda i: self.state[i] or 1):
            self.check_time()
            c.send(b"get " + b" ".join(key_name(i).encode() for i in batch) + b"\r\n")
            got = {}
            while True:
                r = c.line()
                if r == b"END":
                    break
                f = r.split(b" ")
                if len(f) != 4 or f[0] != b"VALUE":
                    raise IOError("bad get reply: %r" % r[:80])
                n = int(f[3])
                data = c.rf.read(n + 2)
                if len(data) != n + 2 or data[-2:] != b"\r\n":
                    raise IOError("short value for %r" % f[1])
                got[f[1].decode()] = (int(f[2]), data[:-2])
            for i in batch:
                self.gets += 1
                k = key_name(i)
                gen = self.state[i]
                if gen == 0:
                    if k in got:
                        self.err("%s: deleted key came back" % k)
                    continue
                if k not in got:
                    self.err("%s: lost (generation %d)" % (k, gen))
                    continue
                flags, data = got.pop(k)
                want = value_of(i, gen)
                if flags != len(want) or data != want:
                    self.err("%s: corrupted (generation %d, want %d bytes, got %d bytes, flags %d)"
                             % (k, gen, len(want), len(data), flags))
            if got:
                self.err("unexpected keys in reply: %r" % list(got)[:5])

    def run(self):
        c = None
        try:
            c = Conn(self.args.port, self.args.io_timeout)
            t = time.monotonic()
            self.do_sets(c, self.keys, lambda i: 1)
            self.phase_time["set"] = time.monotonic() - t
            self.sync()
            t = time.monotonic()
            self.do_verify(c, self.keys)
            self.phase_time["get"] = time.monotonic() - t
            # churn: overwrite every 5th key with a new generation (new
            # size), delete every 11th key, then verify everything again
            over = [i for i in self.keys if i % 5 == 0 and i % 11 != 0]
            dele = [i for i in self.keys if i % 11 == 0]
            for i in over:
                self.state[i] = 2
            self.do_sets(c, over, lambda i: 2)
            for i in dele:
                self.state[i] = 0
            self.do_deletes(c, dele)
            self.sync()
            t = time.monotonic()
            self.do_verify(c, self.keys)
            self.phase_time["reget"] = time.monotonic() - t
        except Exception as e:  # report, never hang
            self.err("worker %d: %s: %s" % (self.wid, type(e).__name__, e))
            self.failed = True
            self.barrier.abort()
        finally:
            if c:
                c.close()

    def sync(self):
        self.barrier.wait(timeout=max(1.0, self.deadline - time.monotonic()))


def stats(port):
    c = Conn(port, 10)
    c.send(b"stats\r\n")
    out = {}
    while True:
        r = c.line()
        if r == b"END":
            break
        f = r.decode().split(" ")
        if len(f) == 3 and f[0] == "STAT":
            out[f[1]] = f[2]
    c.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=150.0)
    ap.add_argument("--io-timeout", type=float, default=30.0)
    args = ap.parse_args()

    deadline = time.monotonic() + args.time_limit
    state = {i: 1 for i in range(args.keys)}
    barrier = threading.Barrier(args.threads)
    workers = []
    for w in range(args.threads):
        keys = list(range(w, args.keys, args.threads))
        wk = Worker(w, args, keys, state, deadline)
        wk.barrier = barrier
        wk.failed = False
        workers.append(wk)
    t0 = time.monotonic()
    for wk in workers:
        wk.start()
    for wk in workers:
        wk.join(max(1.0, deadline - time.monotonic() + 5))
    elapsed = time.monotonic() - t0
    errors = [e for wk in workers for e in wk.errors]
    if any(wk.is_alive() for wk in workers):
        errors.append("client threads still running at the time limit")

    live = sum(1 for g in state.values() if g)
    st = {}
    try:
        st = stats(args.port)
        if int(st.get("curr_items", -1)) != live:
            errors.append("curr_items %s, expected %d" % (st.get("curr_items"), live))
        if int(st.get("evictions", 0)) != 0:
            errors.append("evictions %s (memory limit too small, keys lost)" % st["evictions"])
    except Exception as e:
        errors.append("stats: %s" % e)

    sets = sum(wk.sets for wk in workers)
    gets = sum(wk.gets for wk in workers)
    dels = sum(wk.deletes for wk in workers)
    set_t = max((wk.phase_time.get("set", 0) for wk in workers), default=0)
    get_t = max((wk.phase_time.get("get", 0) for wk in workers), default=0)
    res = {
        "keys": args.keys, "live": live, "sets": sets, "gets": gets, "deletes": dels,
        "seconds": round(elapsed, 2),
        "ops_per_sec": round((sets + gets + dels) / elapsed) if elapsed else 0,
        "set_per_sec": round(args.keys / set_t) if set_t else 0,
        "get_per_sec": round(args.keys / get_t) if get_t else 0,
        "curr_items": st.get("curr_items"), "evictions": st.get("evictions"),
        "errors": errors[:20], "error_count": len(errors),
    }
    print(json.dumps(res))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
