#!/usr/bin/env python3
"""Crash loop for the AOF: a writer appends numbered elements to a list in
pipelines and counts what the server acknowledged; the server is killed
with SIGKILL at a random moment, restarted on the same directory, and the
list is checked: every acknowledged element is there, in order, nothing
duplicated, nothing that was never sent. Repeats --rounds times, now and
then asking for BGREWRITEAOF so kills also land during rewrites.

Usage: scripts/crash_loop.py [--rounds 50] [--fsync always|everysec|no]
(the short version of this loop runs in the test suite: tests/aof.rs)
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRANARY = os.environ.get("GRANARY_BIN", os.path.join(ROOT, "target/release/granary"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from persistence_bench import Conn, free_port  # noqa: E402


def start(workdir, fsync):
    port = free_port()
    proc = subprocess.Popen(
        [GRANARY, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--appendfsync", fsync],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c = Conn(port)
            if c.cmd("PING") == "PONG":
                return proc, port
        except (OSError, ConnectionError, RuntimeError):
            time.sleep(0.01)
    sys.exit("granary did not start")


def writer(port, first, acked, stop):
    try:
        c = Conn(port)
        n = first
        while not stop.is_set():
            batch = b"".join(
                b"*3\r\n$5\r\nRPUSH\r\n$3\r\nlog\r\n$%d\r\n%d\r\n" % (len(str(i)), i)
                for i in range(n, n + 100))
            c.sock.sendall(batch)
            for _ in range(100):
                c.reply()
            n += 100
            acked[0] = n
    except (OSError, ConnectionError, RuntimeError):
        pass  # killed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--fsync", default="always")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="granary-crash-")
    rng = random.Random(1)
    try:
        proc, port = start(work, args.fsync)
        expected = 0
        for r in range(args.rounds):
            acked = [expected]
            stop = threading.Event()
            t = threading.Thread(target=writer, args=(port, expected, acked, stop))
            t.start()
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, 0.3))
                try:
                    Conn(port).cmd("BGREWRITEAOF")
                except (OSError, RuntimeError):
                    pass
            time.sleep(rng.uniform(0.05, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            t.join()
            proc, port = start(work, args.fsync)
            got = Conn(port).cmd("LRANGE", "log", 0, -1)
            got = [int(x) for x in got]
            ok = got == list(range(len(got))) and acked[0] <= len(got) <= acked[0] + 100
            print("round %d: %d acknowledged, %d after restart: %s"
                  % (r, acked[0], len(got), "ok" if ok else "LOST OR CORRUPT"))
            if not ok:
                sys.exit(1)
            expected = len(got)
        proc.kill()
        print("all %d rounds: every acknowledged write survived" % args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
