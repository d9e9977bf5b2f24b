#!/usr/bin/env python3
"""Side-by-side throughput of collection commands compare.sh does not cover.

../shared/bench/compare.sh measures LPUSH, LPOP, SADD, HSET, ZADD and INCR
(its workload c); this script adds the reads of the click-log story: SINTER
of a recommendation set with a read set, and SINTER/SMEMBERS/HGETALL/
LRANGE/ZRANGE over preloaded collections. Method as compare.sh: each
workload runs against a fresh server pinned to one CPU (redis-benchmark on
the other), servers interleaved within a round with the order rotating,
and the ratio reported is the median of the per-round paired ratios.

    scripts/collection_throughput.py [--rounds 5] [--requests 1000000]
        [--granary target/release/granary] [--only SINTER]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def sadd(key, members):
    return [resp("SADD", key, *members)]


# name -> (setup commands, redis-benchmark command, cost: requests are
# --requests / cost, so that every workload runs for a few seconds)
WORKLOADS = {
    "SINTER 50 x 100 ints": (
        sadd("rec", range(0, 100, 2)) + sadd("read", range(50, 150)),
        ["SINTER", "rec", "read"],
        1,
    ),
    "SINTER 1k x 1k strings": (
        sadd("a", (f"item:{i}" for i in range(1000)))
        + sadd("b", (f"item:{i}" for i in range(500, 1500))),
        ["SINTER", "a", "b"],
        20,
    ),
    "SINTERCARD 3 x 10k": (
        sadd("x", (f"m{i}" for i in range(10_000)))
        + sadd("y", (f"m{i}" for i in range(0, 20_000, 2)))
        + sadd("z", (f"m{i}" for i in range(0, 30_000, 3))),
        ["SINTERCARD", "3", "x", "y", "z"],
        200,
    ),
    "SMEMBERS 100": (sadd("s", (f"item:{i}" for i in range(100))), ["SMEMBERS", "s"], 4),
    "HGETALL 5 fields": (
        [resp("HSET", "h", "readAt", "1700000000000", "isRecommended", "1",
              "user", "42", "item", "4711", "source", "web")],
        ["HGETALL", "h"],
        1,
    ),
    "LRANGE 0 49 of 50": (
        [resp("RPUSH", "l", *(f"item:{i}" for i in range(50)))],
        ["LRANGE", "l", "0", "49"],
        2,
    ),
    "ZRANGE 0 9 of 1k": (
        [resp("ZADD", "z", *(x for i in range(1000) for x in (i * 1.5, f"m{i}")))],
        ["ZRANGE", "z", "0", "9", "WITHSCORES"],
        1,
    ),
}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name, argv, cpu):
        self.name, self.port = name, free_port()
        cmd = ["taskset", "-c", str(cpu)] + argv + ["--port", str(self.port),
                                                    "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.05)

    def load(self, commands):
        for c in commands:
            self.sock.sendall(c)
            buf = b""
            while not buf.endswith(b"\r\n"):
                buf += self.sock.recv(65536)
            if buf.startswith(b"-"):
                raise RuntimeError(f"{self.name}: {buf!r}")

    def stop(self):
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


def bench(server, command, requests, client_cpu):
    before = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        ["taskset", "-c", str(client_cpu), "redis-benchmark", "-p", str(server.port),
         "-c", "50", "-P", "16", "-n", str(requests), "-q", *command],
        capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(server.proc.pid) - before
    line = out.strip().splitlines()[-1].split("\r")[-1]
    rps = float(line.split(":", 1)[1].split("requests")[0])
    return rps, used * 1e6 / requests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--granary", default=os.path.join(ROOT, "target/release/granary"))
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--only", help="run the workloads whose name contains this")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    a = ap.parse_args()
    if os.geteuid() == 0:
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    servers = [("redis", [a.redis]), ("granary", [a.granary])]
    names = [n for n in WORKLOADS if not a.only or a.only in n]
    results = {(w, s): [] for w in names for s, _ in servers}
    for r in range(a.rounds):
        order = servers[r % 2:] + servers[:r % 2]
        for w in names:
            setup, command, cost = WORKLOADS[w]
            for name, argv in order:
                s = Server(name, argv, a.server_cpu)
                try:
                    s.load(setup)
                    results[(w, name)].append(
                        bench(s, command, max(a.requests // cost, 1000), a.client_cpu))
                finally:
                    s.stop()
            print(f"round {r + 1} {w}: " + ", ".join(
                f"{n} {results[(w, n)][-1][0]:,.0f}/s" for n, _ in servers), file=sys.stderr)
    print(f"| workload (-c 50 -P 16, {a.rounds} rounds) | redis req/s | granary req/s "
          "| ratio | redis CPU us/op | granary CPU us/op |")
    print("|---|---|---|---|---|---|")
    for w in names:
        red, gra = results[(w, "redis")], results[(w, "granary")]
        ratio = statistics.median(g[0] / r[0] for r, g in zip(red, gra))
        print(f"| {w} | {statistics.median(x[0] for x in red):,.0f} "
              f"| {statistics.median(x[0] for x in gra):,.0f} | x{ratio:.2f} "
              f"| {statistics.median(x[1] for x in red):.2f} "
              f"| {statistics.median(x[1] for x in gra):.2f} |")


if __name__ == "__main__":
    main()
