#!/usr/bin/env python3
"""Memory per element of collections: Granary against redis-server, one run.

For every workload in WORKLOADS, each server is started fresh on a free
port, the workload's commands are streamed through a pipeline, and the
growth of INFO used_memory and of the process's RSS is divided by the
number of elements loaded. Redis and Granary are measured back to back, so
their ratio is meaningful even on a shared machine.

    scripts/collection_memory.py [--granary target/release/granary]
                                 [--redis redis-server] [--only list_str11,...]
                                 [--elements 1000000]

To add a workload (a hash, a set, a zset...), add an entry to WORKLOADS: a
name, a description, the key whose OBJECT ENCODING to report, and a
generator of the commands loading n elements (each a list of bytes
arguments).
"""
import argparse
import os
import socket
import subprocess
import sys
import time

ELEMENTS = 1_000_000
BATCH = 100  # elements per command


def list_of(values):
    """RPUSH commands loading `values(n)` (a generator of bytes) into one key."""
    def commands(n):
        chunk = []
        for v in values(n):
            chunk.append(v)
            if len(chunk) == BATCH:
                yield [b"RPUSH", b"list"] + chunk
                chunk = []
        if chunk:
            yield [b"RPUSH", b"list"] + chunk
    return commands


def one_key(cmd, key, args_of):
    """`cmd key ...` commands adding n elements, BATCH per command;
    `args_of(i)` gives the arguments one element adds."""
    def commands(n):
        for start in range(0, n, BATCH):
            args = [cmd, key]
            for i in range(start, min(n, start + BATCH)):
                args.extend(args_of(i))
            yield args
    return commands


def small_hashes(n):
    """n / 10 hashes of 5 fields, like the click log's {user}:{item}."""
    for i in range(n // 10):
        yield [b"HSET", b"h:%d" % i, b"readAt", b"%d" % (1700000000000 + i),
               b"isRecommended", b"%d" % (i % 2), b"user", b"%d" % (i // 50),
               b"item", b"%d" % (i % 5000), b"source", b"web"]


# name -> (description, key to report OBJECT ENCODING of, command
# generator for n elements[, elements per unit reported: small hashes are
# reported per hash, n / 10 of them])
WORKLOADS = {
    "list_str11": (
        "list of 11-byte strings",
        b"list",
        list_of(lambda n: (b"e%010d" % i for i in range(n))),
    ),
    "list_int": (
        "list of small integers (0..999)",
        b"list",
        list_of(lambda n: (b"%d" % (i % 1000) for i in range(n))),
    ),
    "set_str": (
        "set of 11-byte strings",
        b"set",
        one_key(b"SADD", b"set", lambda i: [b"m%010d" % i]),
    ),
    "hash_big": (
        "hash of 11-byte fields and 8-byte values",
        b"hash",
        one_key(b"HSET", b"hash", lambda i: [b"f%010d" % i, b"%08d" % i]),
    ),
    "zset_big": (
        "sorted set of 11-byte members",
        b"zset",
        one_key(b"ZADD", b"zset", lambda i: [b"%d" % (i * 7 % 1000003), b"m%010d" % i]),
    ),
    "hash_small": (
        "hashes of 5 fields (per hash)",
        b"h:0",
        small_hashes,
        10,
    ),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """A minimal RESP client: pipelined commands, replies read and checked."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def send(self, cmds):
        out = []
        for args in cmds:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(1 << 16)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(1 << 16)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        if kind == b":":
            return int(rest)
        return rest

    def call(self, *args):
        self.send([list(args)])
        return self.reply()


def wait_ready(port, deadline=30.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            c = Conn(port)
            if c.call(b"PING") == b"PONG":
                return c
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not answer PING")


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def used_memory(conn):
    info = conn.call(b"INFO", b"memory").decode()
    for line in info.split("\r\n"):
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise RuntimeError("no used_memory in INFO")


def load(conn, commands, n, window=200):
    """Streams the commands, keeping at most `window` replies outstanding."""
    pending = 0
    batch = []
    for cmd in commands(n):
        batch.append(cmd)
        if len(batch) == window:
            conn.send(batch)
            pending += len(batch)
            batch = []
            while pending > window:
                conn.reply()
                pending -= 1
    conn.send(batch)
    pending += len(batch)
    for _ in range(pending):
        conn.reply()


def measure(argv, port, workload, elements):
    """Starts a server, loads the workload; (used_memory, rss) per element."""
    desc, key, commands = workload[:3]
    units = elements // (workload[3] if len(workload) > 3 else 1)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = wait_ready(port)
        time.sleep(0.2)  # let start-up allocations settle before the baseline
        used0, rss0 = used_memory(conn), rss_bytes(proc.pid)
        load(conn, commands, elements)
        used1, rss1 = used_memory(conn), rss_bytes(proc.pid)
        encoding = conn.call(b"OBJECT", b"ENCODING", key).decode()
        return (used1 - used0) / units, (rss1 - rss0) / units, encoding
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--granary", default="target/release/granary")
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--elements", type=int, default=ELEMENTS)
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(WORKLOADS)
    servers = {
        "redis": lambda p: [args.redis, "--port", str(p), "--save", "", "--appendonly", "no"],
        "granary": lambda p: [args.granary, "--port", str(p), "--save", "", "--appendonly", "no"],
    }
    print(f"{'workload':<12} {'server':<8} {'used B/elem':>12} {'RSS B/elem':>11}  encoding")
    for name in names:
        results = {}
        for server, argv in servers.items():
            port = free_port()
            results[server] = measure(argv(port), port, WORKLOADS[name], args.elements)
            used, rss, enc = results[server]
            print(f"{name:<12} {server:<8} {used:>12.2f} {rss:>11.2f}  {enc}")
        (ru, rr, _), (gu, gr, _) = results["redis"], results["granary"]
        print(f"{name:<12} {'g/r':<8} {gu / ru:>11.2f}x {gr / rr:>10.2f}x  ({args.elements} elements: {WORKLOADS[name][0]})")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
