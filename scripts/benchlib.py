"""The harness of the side-by-side throughput scripts (collection_throughput,
stream_bench, types_throughput): each workload runs against a fresh server
pinned to one CPU (redis-benchmark on the other), servers interleaved
within a round with the order rotating, and the ratio reported is the
median of the per-round paired ratios, as ../shared/bench/compare.sh does.
"""
import argparse
import os
import re
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


def count_replies(buf):
    """Complete top-level replies in buf (setup replies are flat, except
    XREADGROUP's, counted whole once the buffer ends a line)."""
    n, i = 0, 0
    while True:
        j = buf.find(b"\r\n", i)
        if j < 0:
            return n
        if buf[i:i + 1] == b"$" and buf[i + 1:j] != b"-1":
            size = int(buf[i + 1:j])
            if len(buf) < j + 2 + size + 2:
                return n
            j += size + 2
        elif buf[i:i + 1] == b"*":
            return n + (1 if buf.endswith(b"\r\n") else 0)
        n += 1
        i = j + 2


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
        """Sends the commands pipelined in batches; fails on an error reply."""
        for i in range(0, len(commands), 1000):
            batch = commands[i:i + 1000]
            self.sock.sendall(b"".join(batch))
            buf, replies = b"", 0
            while replies < len(batch):
                buf += self.sock.recv(1 << 20)
                replies = count_replies(buf)
            if b"\r\n-" in b"\r\n" + buf:
                raise RuntimeError(f"{self.name}: {buf[:200]!r}")

    def stop(self):
        self.sock.close()
        self.proc.kill()
        self.proc.wait()


def bench(server, command, requests, client_cpu, extra=()):
    before = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        ["taskset", "-c", str(client_cpu), "redis-benchmark", "-p", str(server.port),
         "-c", "50", "-P", "16", "-n", str(requests), "-q", *extra, *command],
        capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(server.proc.pid) - before
    line = out.strip().splitlines()[-1].split("\r")[-1]
    rps = float(re.search(r"([\d.]+) requests per second", line).group(1))
    return rps, used * 1e6 / requests


def run(workloads, doc):
    """Runs `workloads`: name -> (setup, command, cost[, benchmark args]).
    setup is a list of RESP commands, or a function of the request count;
    requests are --requests / cost, so every workload runs a few seconds."""
    ap = argparse.ArgumentParser(description=doc)
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
    names = [n for n in workloads if not a.only or a.only in n]
    results = {(w, s): [] for w in names for s, _ in servers}
    for r in range(a.rounds):
        order = servers[r % 2:] + servers[:r % 2]
        for w in names:
            setup, command, cost, *extra = workloads[w]
            requests = max(a.requests // cost, 1000)
            for name, argv in order:
                s = Server(name, argv, a.server_cpu)
                try:
                    s.load(setup(requests) if callable(setup) else setup)
                    results[(w, name)].append(
                        bench(s, command, requests, a.client_cpu, *extra))
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
