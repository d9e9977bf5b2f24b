#!/usr/bin/env python3
"""Pub/sub fan-out, Granary next to redis-server: 1 publisher, 100 subscribers.

Each server is started fresh and pinned to CPU 0; 100 `redis-cli SUBSCRIBE`
processes (their output discarded) and one redis-benchmark publisher run on
CPU 1. The figure is PUBLISH requests/s, each delivered to every subscriber
(so deliveries/s = 100 x that), and the server's CPU time per PUBLISH;
rounds alternate the servers and the ratio is the median of per-round
paired ratios. With 100 redis-cli readers sharing CPU 1 the subscribers
can be the limit: read the CPU column to see which server does less work.

    scripts/pubsub_fanout.py [--rounds 5] [--subscribers 100] [--requests 200000]
        [--payload 64] [--granary target/release/granary]
"""
import argparse
import os
import socket
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def numsub(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "PUBSUB", "NUMSUB", "fanout"],
                         capture_output=True, text=True).stdout.split()
    return int(out[1]) if len(out) == 2 else 0


def run_once(argv, subscribers, requests, payload, cpu_server, cpu_client):
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", str(cpu_server)] + argv +
                              ["--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subs = []
    try:
        deadline = time.time() + 20
        while subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        for _ in range(subscribers):
            subs.append(subprocess.Popen(
                ["taskset", "-c", str(cpu_client), "redis-cli", "-p", str(port),
                 "SUBSCRIBE", "fanout"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 20
        while numsub(port) < subscribers:
            if time.time() > deadline:
                raise RuntimeError("subscribers did not all subscribe")
            time.sleep(0.05)
        cpu0 = cpu_seconds(server.pid)
        out = subprocess.run(
            ["taskset", "-c", str(cpu_client), "redis-benchmark", "-p", str(port), "-c", "1",
             "-P", "16", "-n", str(requests), "-d", str(payload), "-q",
             "PUBLISH", "fanout", "x" * payload],
            capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(server.pid) - cpu0
        line = out.strip().splitlines()[-1].split("\r")[-1]
        alive = numsub(port)
        if alive != subscribers:
            raise RuntimeError(f"only {alive} subscribers left")
        rps = float(line.split(":", 1)[1].split("requests")[0])
        return rps, used * 1e6 / requests
    finally:
        for s in subs:
            s.kill()
            s.wait()
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--granary", default=os.path.join(ROOT, "target/release/granary"))
    ap.add_argument("--redis", default="redis-server")
    a = ap.parse_args()
    servers = [("redis", [a.redis]), ("granary", [a.granary])]
    results = {name: [] for name, _ in servers}
    for r in range(a.rounds):
        for name, argv in (servers if r % 2 == 0 else servers[::-1]):
            results[name].append(run_once(argv, a.subscribers, a.requests, a.payload, 0, 1))
        print(f"round {r + 1}: " + ", ".join(
            f"{n} {results[n][-1][0]:,.0f}/s ({results[n][-1][1]:.1f} us CPU/publish)"
            for n, _ in servers))
    ratio = statistics.median(g[0] / r[0] for r, g in zip(results["redis"], results["granary"]))
    med = {n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
           for n, v in results.items()}
    print("| workload | redis publishes/s | granary publishes/s | ratio "
          "| redis server CPU us/publish | granary server CPU us/publish |")
    print(f"| 1 publisher, {a.subscribers} subscribers, {a.payload}-byte messages, -P 16 "
          f"| {med['redis'][0]:,.0f} | {med['granary'][0]:,.0f} | x{ratio:.2f} "
          f"| {med['redis'][1]:.1f} | {med['granary'][1]:.1f} |")


if __name__ == "__main__":
    main()
