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
   redis-benchmark was loading the server. Beside throughput it prints
   the CPU time of the threads that run commands per request: the command
   path's own cost, which the flusher and the database (sharing the 2
   cores) do not blur.

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


# redis-benchmark's LPUSH test pushes to one key; "LPUSH random" spreads
# the pushes over 100k lists, as the click log does.
TESTS = {
    "SET": ["-t", "set"],
    "LPUSH": ["-t", "lpush"],
    "LPUSH random": ["lpush", "mylist:__rand_int__", "v"],
}


def worker_cpu_ticks(pid):
    """CPU ticks of the threads that run commands (tokio-rt-worker): the
    command path's own cost, without the flusher's and the database's."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if task.joinpath("comm").read_text().strip() != "tokio-rt-worker":
                continue
            fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def benchmark(proc, port, n):
    """Per test: (requests per second, worker CPU ns per request)."""
    tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
    results = {}
    for test, args in TESTS.items():
        before = worker_cpu_ticks(proc.pid)
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-n", str(n), "-P", "16", "-r", "100000",
             "-q", *args],
            capture_output=True, text=True, check=True).stdout
        ns = (worker_cpu_ticks(proc.pid) - before) * tick_ns / n
        rps = float(re.findall(r"([\d.]+) requests per second", out)[-1])
        results[test] = (rps, ns)
    return results


def flushed_rows(r):
    return int(r.info("writebehind")["rows_flushed"])


def command_path(sink, n):
    proc, port = start()
    try:
        off = benchmark(proc, port, n)
    finally:
        stop(proc)
    rules = ["s string key:{id} table=bench_kv value=v", "l list {name} table=bench_list",
             "m list mylist:{n} table=bench_lists"]
    proc, port = start(sink, rules)
    try:
        r = redis.Redis(port=port)
        r.execute_command("WRITEBEHIND", "FLUSH")  # tables created
        r.execute_command("WRITEBEHIND", "PAUSE")
        paused = benchmark(proc, port, n)
        r.execute_command("WRITEBEHIND", "FLUSH")
        r.execute_command("WRITEBEHIND", "RESUME")
        before, t = flushed_rows(r), time.time()
        on = benchmark(proc, port, n)
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
        for test, (rps, ns) in off.items():
            slow = lambda x: 100 * (1 - x[test][0] / rps)
            more = lambda x: 100 * (x[test][1] / ns - 1)
            print(f"{test}: write-behind off {rps:,.0f} req/s, {ns:,.0f} ns/req of worker CPU; "
                  f"on ({name}), flushing paused: {paused[test][0]:,.0f} req/s "
                  f"({slow(paused):+.1f}% slower), {paused[test][1]:,.0f} ns/req "
                  f"({more(paused):+.1f}%); flushing: {on[test][0]:,.0f} req/s "
                  f"({slow(on):+.1f}% slower), {on[test][1]:,.0f} ns/req ({more(on):+.1f}%)")
        print(f"{name}: {under_load:,.0f} rows/s committed while redis-benchmark loaded the server")


if __name__ == "__main__":
    main()
