#!/usr/bin/env python3
"""Write-behind throughput: rows per second into SQLite (and PostgreSQL),
and the command path's throughput with write-behind on vs off.

    python3 scripts/writebehind_bench.py [--rounds 3] [--rows 500000]
        [--requests 1000000] [--pg "host=... port=... user=... dbname=..."]
        [--pin] [--skip-drain]

1. Draining a backlog: starts Granary (GRANARY_BIN, default the release
   binary) with a sink, pauses write-behind, writes ROWS rows (half list
   elements appended with RPUSH of 100 elements, half one-field hashes)
   through pipelines, then times WRITEBEHIND FLUSH: rows / flush time.
2. Command path: redis-benchmark -P 16 -r 100000 (SET, LPUSH to one key,
   LPUSH to 100k keys) against Granary without a sink ("off"), with a sink
   and rules mapping every benchmark key but flushing paused ("paused":
   the cost on the command path itself, queueing keys and the journal),
   and flushing every second ("on": adding the flusher and the database,
   on the same cores). Each round runs the three on fresh servers, in an
   order that rotates between rounds; the slowdown reported is the median
   over rounds of each round's ratio to "off". Beside throughput: the CPU
   time of the threads that run commands per request (the command path's
   own cost, which the flusher and the database do not blur), for "on"
   the rows committed while redis-benchmark ran and the time the FLUSH
   right after it took (the backlog the run left), so what the flusher
   deferred is in sight.

Needs redis-py and redis-benchmark; PostgreSQL runs only with --pg (an
existing server: scripts never assume one, so start your own, e.g. as the
tests do with initdb on a free port) and needs psql, which CHECKPOINTs it
before each measurement so that no checkpoint of the previous one lands
in it.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("GRANARY_BIN", str(REPO / "target" / "release" / "granary"))

# redis-benchmark's LPUSH test pushes to one key; "LPUSH random" spreads
# the pushes over 100k lists, as the click log does.
TESTS = {
    "SET": ["-t", "set"],
    "LPUSH": ["-t", "lpush"],
    "LPUSH random": ["lpush", "mylist:__rand_int__", "v"],
}
RULES = ["s string key:{id} table=bench_kv value=v", "l list {name} table=bench_list",
         "m list mylist:{n} table=bench_lists"]


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


# --pin: the server (every thread, the flusher included) on CPU 0 and
# redis-benchmark on CPU 1, as ../shared/bench/compare.sh does: steadier
# figures, and the flusher then competes with the commands for one core.
SERVER_CPU, CLIENT_CPU = [], []


def start(sink=None, rules=(), interval=1000):
    port = free_port()
    data = tempfile.mkdtemp(prefix="wb-bench-data-")
    args = SERVER_CPU + [BIN, "--port", str(port), "--save", "", "--appendonly", "no",
                         "--dir", data]
    if sink:
        args += ["--writebehind-sink", sink, "--writebehind-interval", str(interval),
                 "--writebehind-max-pending", "100000000"]
    for r in rules:
        args += ["--writebehind-rule"] + r.split(" ")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.data_dir = data
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
    shutil.rmtree(proc.data_dir, ignore_errors=True)


class Sink:
    """A sink spec, and a way to leave it quiet and empty between runs."""

    def __init__(self, name, spec, tmp):
        self.name, self.spec, self.tmp = name, spec, tmp

    def reset(self):
        tables = ["bench_kv", "bench_list", "bench_lists", "bench_log", "bench_users"]
        if self.name == "sqlite":
            path = self.spec.split(":", 1)[1]
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
        else:
            sql = "".join(f"DROP TABLE IF EXISTS {t};" for t in tables) + "CHECKPOINT;"
            subprocess.run(["psql", self.spec, "-q", "-X", "-c", sql], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def drain_rate(sink, rows):
    sink.reset()
    rules = ["l list log:{user} table=bench_log value=v",
             "h hash user:{id} table=bench_users fields=n:integer"]
    proc, port = start(sink.spec, rules)
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
        return rows / (time.time() - t)
    finally:
        stop(proc)


def worker_cpu_ticks(pid):
    """CPU ticks of the threads that run commands (tokio-rt-worker)."""
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


def wb_info(r):
    return r.info("writebehind")


def run_mode(mode, sink, n):
    """One mode on a fresh server: per test, a dict of measurements."""
    if mode == "off":
        proc, port = start()
    else:
        sink.reset()
        proc, port = start(sink.spec, RULES)
    tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
    results = {}
    try:
        r = redis.Redis(port=port)
        if mode != "off":
            r.execute_command("WRITEBEHIND", "FLUSH")  # tables created
        if mode == "paused":
            r.execute_command("WRITEBEHIND", "PAUSE")
        for test, args in TESTS.items():
            if mode == "on":
                before = wb_info(r)
            cpu, t = worker_cpu_ticks(proc.pid), time.time()
            out = subprocess.run(
                CLIENT_CPU + ["redis-benchmark", "-p", str(port), "-n", str(n), "-P", "16",
                              "-r", "100000", "-q", *args],
                capture_output=True, text=True, check=True).stdout
            elapsed = time.time() - t
            m = {"rps": float(re.findall(r"([\d.]+) requests per second", out)[-1]),
                 "ns": (worker_cpu_ticks(proc.pid) - cpu) * tick_ns / n}
            if mode == "on":
                during = wb_info(r)
                t = time.time()
                r.execute_command("WRITEBEHIND", "FLUSH")
                m["drain_s"] = time.time() - t
                m["rows_per_s"] = (during["rows_flushed"] - before["rows_flushed"]) / elapsed
                # (Builds before pacing have no paced_ms.)
                m["paced_ms"] = during.get("paced_ms", 0) - before.get("paced_ms", 0)
            elif mode == "paused":
                r.execute_command("WRITEBEHIND", "FLUSH")  # the next test starts empty
            results[test] = m
    finally:
        stop(proc)
    return results


def pct(ratios):
    """Median change in percent, with the range over rounds."""
    d = sorted(100 * (x - 1) for x in ratios)
    return f"{statistics.median(d):+.1f} % ({d[0]:+.1f} .. {d[-1]:+.1f})"


def command_path(sink, n, rounds):
    modes = ["off", "paused", "on"]
    runs = {m: [] for m in modes}
    for i in range(rounds):
        order = modes[i % 3:] + modes[:i % 3]
        for mode in order:
            runs[mode].append(run_mode(mode, sink, n))
    print(f"\n{sink.name}: command path, {rounds} rounds, change against write-behind off "
          f"(median of per-round ratios, range; throughput below 0 is slower):")
    for test in TESTS:
        off = [r[test] for r in runs["off"]]
        line = [f"  {test}: off {statistics.median(x['rps'] for x in off):,.0f} req/s, "
                f"{statistics.median(x['ns'] for x in off):,.0f} ns/req worker CPU"]
        for mode in ("paused", "on"):
            got = [r[test] for r in runs[mode]]
            line.append(f"{mode}: throughput {pct([g['rps'] / o['rps'] for g, o in zip(got, off)])}, "
                        f"worker CPU/req {pct([g['ns'] / o['ns'] for g, o in zip(got, off)])}")
        on = [r[test] for r in runs["on"]]
        line.append(f"on: {statistics.median(x['rows_per_s'] for x in on):,.0f} rows/s committed "
                    f"during the run, FLUSH after it {statistics.median(x['drain_s'] for x in on):.2f} s, "
                    f"paced {statistics.median(x['paced_ms'] for x in on):,.0f} ms")
        print("\n    ".join(line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default="")
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--pin", action="store_true")
    a = ap.parse_args()
    if a.pin:
        SERVER_CPU[:] = ["taskset", "-c", "0"]
        CLIENT_CPU[:] = ["taskset", "-c", "1"]
    tmp = tempfile.mkdtemp(prefix="wb-bench-")
    sinks = [Sink("sqlite", f"sqlite:{tmp}/bench.db", tmp)]
    if a.pg:
        sinks.append(Sink("postgres", a.pg, tmp))
    if not a.skip_drain:
        for sink in sinks:
            rates = [drain_rate(sink, a.rows) for _ in range(a.rounds)]
            print(f"{sink.name}: a backlog of {a.rows} rows flushed at "
                  f"{statistics.median(rates):,.0f} rows/s (median; "
                  f"{min(rates):,.0f} .. {max(rates):,.0f})")
    for sink in sinks:
        command_path(sink, a.requests, a.rounds)


if __name__ == "__main__":
    main()
