#!/usr/bin/env python3
"""Write-behind throughput: rows per second into SQLite (and PostgreSQL),
and the command path's throughput with write-behind on vs off.

    python3 scripts/writebehind_bench.py [--rows 500000] [--pg "host=... port=... user=... dbname=..."]

1. Rows per second: starts Granary (GRANARY_BIN, default the release
   binary) with a sink, pauses write-behind, writes ROWS rows (half list
   elements appended with RPUSH of 100 elements, half one-field hashes)
   through pipelines, then times WRITEBEHIND FLUSH: rows / flush time.
2. Command path: redis-benchmark -t set,lpush -P 16 against Granary
   without a sink, then with a sink and rules mapping the benchmark's keys
   twice: with flushing paused (the cost on the command path itself:
   marking keys, the journal) and flushing every second (adding the
   flusher's and the database's CPU, on the same cores); prints each and
   the slowdown, and the rows per second the flusher committed while
   redis-benchmark was loading the server.

Needs redis-py and redis-benchmark. PostgreSQL runs only with --pg (an
existing server: scripts never assume one, so start your own, e.g. as the
tests do with initdb on a free port).
"""

import argparse
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("GRANARY_BIN", str(REPO / "target" / "release" / "granary"))


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def start(sink=None, rules=(), interval=1000):
    port = free_port()
    args = [BIN, "--port", str(port), "--save", "", "--appendonly", "no"]
    if sink:
        args += ["--writebehind-sink", sink, "--writebehind-interval", str(interval),
                 "--writebehind-max-pending", "100000000"]
    for r in rules:
        args += ["--writebehind-rule"] + r.split(" ")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("granary did not start")


def stop(proc):
    proc.terminate()
    proc.wait()


def rows_per_second(sink, rows, tag):
    rules = [f"l list log:{{user}} table=bench_log_{tag} value=v",
             f"h hash user:{{id}} table=bench_users_{tag} fields=n:integer"]
    proc, port = start(sink, rules)
    try:
        r = redis.Redis(port=port)
        r.execute_command("WRITEBEHIND", "FLUSH")  # tables created
        r.execute_command("WRITEBEHIND", "PAUSE")
        pipe = r.pipeline(transaction=False)
        half = rows // 2
        for i in range(0, half, 100):
            pipe.rpush(f"log:{i % 1000}", *range(i, i + 100))
            if len(pipe) >= 100:
                pipe.execute()
        for i in range(half):
            pipe.hset(f"user:{i}", "n", i)
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()
        t = time.time()
        r.execute_command("WRITEBEHIND", "FLUSH")
        dt = time.time() - t
        return rows / dt, dt
    finally:
        stop(proc)


def benchmark(port, n):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,lpush", "-n", str(n),
         "-P", "16", "-r", "100000", "-q"],
        capture_output=True, text=True, check=True).stdout
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"(\w+): ([\d.]+) requests per second", out)}


def flushed_rows(r):
    return int(r.info("writebehind")["rows_flushed"])


def command_path(sink, n):
    proc, port = start()
    try:
        off = benchmark(port, n)
    finally:
        stop(proc)
    rules = ["s string key:{id} table=bench_kv value=v", "l list {name} table=bench_list"]
    proc, port = start(sink, rules)
    try:
        r = redis.Redis(port=port)
        r.execute_command("WRITEBEHIND", "FLUSH")  # tables created
        r.execute_command("WRITEBEHIND", "PAUSE")
        paused = benchmark(port, n)
        r.execute_command("WRITEBEHIND", "FLUSH")
        r.execute_command("WRITEBEHIND", "RESUME")
        before, t = flushed_rows(r), time.time()
        on = benchmark(port, n)
        under_load = (flushed_rows(r) - before) / (time.time() - t)
        r.execute_command("WRITEBEHIND", "FLUSH")
    finally:
        stop(proc)
    return off, paused, on, under_load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--pg", default="")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="wb-bench-")
    sinks = [("sqlite", f"sqlite:{tmp}/bench.db")]
    if a.pg:
        sinks.append(("postgres", a.pg))
    for name, sink in sinks:
        rps, dt = rows_per_second(sink, a.rows, name)
        print(f"{name}: {a.rows} rows flushed in {dt:.2f}s = {rps:,.0f} rows/s")
    for name, sink in sinks:
        off, paused, on, under_load = command_path(sink, a.requests)
        for test in off:
            slow = lambda x: 100 * (1 - x.get(test, 0) / off[test])
            print(f"{test}: write-behind off {off[test]:,.0f} req/s; on ({name}) flushing paused "
                  f"{paused.get(test, 0):,.0f} req/s ({slow(paused):+.1f}% slower), flushing "
                  f"{on.get(test, 0):,.0f} req/s ({slow(on):+.1f}% slower)")
        print(f"{name}: {under_load:,.0f} rows/s committed while redis-benchmark loaded the server")


if __name__ == "__main__":
    main()
