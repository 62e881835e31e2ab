#!/usr/bin/env python3
"""Multithreaded Redis client (raw RESP over TCP) used by clients/run.sh.

Empties the server (FLUSHALL ASYNC), writes many string keys of varied sizes whose
values are derived from the key, overwrites a part of them with values of
another size, appends to some, deletes others, and then reads every key
back, verifying each value and DBSIZE.  Connects to 127.0.0.1 only.
Prints one JSON line; exits non-zero if anything was lost or corrupted.
"""
import argparse
import json
import random
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
MAX_VALUE = 256 * 1024
BATCH = 200
POOL = random.Random(7031).randbytes(2 * MAX_VALUE)


def value_size(i, gen):
    h = (i * 2654435761 + gen * 97) & 0xFFFFFFFF
    h2 = (h * 2246822519 + 374761393) & 0xFFFFFFFF
    b = h % 1000
    if b < 800:
        return 1 + h2 % 256
    if b < 990:
        return 257 + h2 % 8000
    return 8192 + h2 % (MAX_VALUE - 8192)


def value_of(i, gen):
    n = value_size(i, gen)
    off = (i * 7919 + gen * 104729) % MAX_VALUE
    return (b"%d/%d:" % (gen, i) + POOL[off:off + n])[:n]


def key_of(i):
    return b"tlk:%d" % i


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n" % len(a))
        out.append(a)
        out.append(b"\r\n")
    return b"".join(out)


class Conn:
    def __init__(self, port, timeout):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb", buffering=1 << 20)

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        line = self.rf.readline()
        if not line.endswith(b"\r\n"):
            raise IOError("connection closed: %r" % line[:80])
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            return (t, rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rf.read(n + 2)
            if len(data) != n + 2:
                raise IOError("short bulk reply")
            return data[:-2]
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise IOError("bad reply: %r" % line[:80])

    def call(self, *args):
        self.send(cmd(*args))
        return self.reply()

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass


class Worker(threading.Thread):
    def __init__(self, wid, port, keys, io_timeout, deadline, barrier):
        super().__init__(daemon=True)
        self.wid, self.port, self.keys = wid, port, keys
        self.io_timeout, self.deadline, self.barrier = io_timeout, deadline, barrier
        self.expect = {}
        self.errors = []
        self.ops = 0
        self.t = {}

    def err(self, m):
        if len(self.errors) < 20:
            self.errors.append(m)

    def pipeline(self, c, cmds, check):
        for k in range(0, len(cmds), BATCH):
            if time.monotonic() > self.deadline:
                raise TimeoutError("client time limit reached")
            part = cmds[k:k + BATCH]
            c.send(b"".join(p[1] for p in part))
            for tag, _ in part:
                check(tag, c.reply())
                self.ops += 1

    def run(self):
        c = None
        try:
            c = Conn(self.port, self.io_timeout)
            ok = (b"+", b"OK")

            def want_ok(i, r):
                if r != ok:
                    self.err("SET %s: %r" % (key_of(i), r))

            t = time.monotonic()
            self.pipeline(c, [(i, cmd(b"SET", key_of(i), value_of(i, 1))) for i in self.keys], want_ok)
            self.t["set"] = time.monotonic() - t
            for i in self.keys:
                self.expect[i] = value_of(i, 1)
            # overwrite every 4th key with generation 2, append to every 6th,
            # delete every 9th
            self.pipeline(c, [(i, cmd(b"SET", key_of(i), value_of(i, 2)))
                              for i in self.keys if i % 4 == 0], want_ok)
            for i in self.keys:
                if i % 4 == 0:
                    self.expect[i] = value_of(i, 2)

            def want_len(i, r):
                if r != len(self.expect[i]):
                    self.err("APPEND %s: %r, want length %d" % (key_of(i), r, len(self.expect[i])))

            app = [i for i in self.keys if i % 6 == 0]
            for i in app:
                self.expect[i] = self.expect[i] + value_of(i, 3)[:100]
            self.pipeline(c, [(i, cmd(b"APPEND", key_of(i), value_of(i, 3)[:100])) for i in app], want_len)

            def want_one(i, r):
                if r != 1:
                    self.err("DEL %s: %r" % (key_of(i), r))

            dele = [i for i in self.keys if i % 9 == 0]
            self.pipeline(c, [(i, cmd(b"DEL", key_of(i))) for i in dele], want_one)
            for i in dele:
                self.expect[i] = None
            self.barrier.wait(timeout=max(1.0, self.deadline - time.monotonic()))

            def verify(i, r):
                want = self.expect[i]
                if want is None:
                    if r is not None:
                        self.err("%s: deleted key came back" % key_of(i))
                elif r is None:
                    self.err("%s: lost" % key_of(i))
                elif r != want:
                    self.err("%s: corrupted (want %d bytes, got %d)" % (key_of(i), len(want), len(r)))

            t = time.monotonic()
            self.pipeline(c, [(i, cmd(b"GET", key_of(i))) for i in self.keys], verify)
            self.t["get"] = time.monotonic() - t
        except Exception as e:
            self.err("worker %d: %s: %s" % (self.wid, type(e).__name__, e))
            self.barrier.abort()
        finally:
            if c:
                c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", type=int, default=50000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--io-timeout", type=float, default=30.0)
    args = ap.parse_args()
    deadline = time.monotonic() + args.time_limit
    errors = []
    c = Conn(args.port, args.io_timeout)
    # ASYNC: the server frees the old data set in a background thread while
    # the workers write, so memory allocated by one thread is freed by another
    if c.call(b"FLUSHALL", b"ASYNC") != (b"+", b"OK"):
        errors.append("FLUSHALL failed")
    barrier = threading.Barrier(args.threads)
    ws = [Worker(w, args.port, list(range(w, args.keys, args.threads)), args.io_timeout,
                 deadline, barrier) for w in range(args.threads)]
    t0 = time.monotonic()
    for w in ws:
        w.start()
    for w in ws:
        w.join(max(1.0, deadline - time.monotonic() + 5))
    elapsed = time.monotonic() - t0
    if any(w.is_alive() for w in ws):
        errors.append("client threads still running at the time limit")
    for w in ws:
        errors.extend(w.errors)
    live = sum(1 for w in ws for v in w.expect.values() if v is not None)
    dbsize = None
    try:
        dbsize = c.call(b"DBSIZE")
        if dbsize != live:
            errors.append("DBSIZE %r, expected %d" % (dbsize, live))
    except Exception as e:
        errors.append("DBSIZE: %s" % e)
    c.close()
    ops = sum(w.ops for w in ws)
    set_t = max((w.t.get("set", 0) for w in ws), default=0)
    get_t = max((w.t.get("get", 0) for w in ws), default=0)
    print(json.dumps({
        "keys": args.keys, "live": live, "dbsize": dbsize, "ops": ops,
        "seconds": round(elapsed, 2),
        "ops_per_sec": round(ops / elapsed) if elapsed else 0,
        "set_per_sec": round(args.keys / set_t) if set_t else 0,
        "get_per_sec": round(args.keys / get_t) if get_t else 0,
        "errors": errors[:20], "error_count": len(errors)}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
