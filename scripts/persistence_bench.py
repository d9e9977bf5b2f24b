#!/usr/bin/env python3
"""RDB persistence, Granary next to redis-server, one server at a time on
the same core (the load generator on the other):

  restart  time from process start to serving a dataset of N keys loaded
           from dump.rdb (DEBUG POPULATE N, SAVE, restart).
  bgsave   BGSAVE of N keys while redis-benchmark writes SETs over the same
           keys: how long it takes, the longest PING round trip seen during
           it (a pinger every millisecond), and the peak memory (PSS of the
           server and any child it forked) relative to before the save.
  aof      SET throughput (redis-benchmark -P 16 -c 50, random keys) with
           persistence off and with appendonly yes under each appendfsync.

Usage: scripts/persistence_bench.py [--keys 1000000,10000000] [--rounds 1]
                                    [--only restart,bgsave,aof]
Prints a table; ratios are Granary / Redis. Needs redis-server,
redis-benchmark and a release build of Granary (target/release/granary or
$GRANARY_BIN).
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRANARY = os.environ.get("GRANARY_BIN", os.path.join(ROOT, "target/release/granary"))
SERVER_CORE = "1"
CLIENT_CORE = "0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """A minimal RESP client (no dependency on redis-py)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b":"):
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 16)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode(errors="replace")
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)

    def info(self, section):
        text = self.cmd("INFO", section)
        return dict(l.split(":", 1) for l in text.splitlines() if ":" in l)


class Server:
    def __init__(self, kind, workdir):
        self.kind = kind
        self.dir = workdir
        self.proc = None
        self.port = None

    def start(self, extra=()):
        self.port = free_port()
        if self.kind == "granary":
            argv = [GRANARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        else:
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
                    "--dir", self.dir]
        argv += list(extra)
        argv = ["taskset", "-c", SERVER_CORE] + argv
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        started = time.monotonic()
        while True:
            try:
                c = Conn(self.port)
                if c.cmd("PING") == "PONG":
                    return time.monotonic() - started, c
            except (ConnectionError, OSError, RuntimeError):
                pass  # not listening yet, or LOADING
            if self.proc.poll() is not None:
                sys.exit("%s exited during start-up" % self.kind)
            time.sleep(0.005)

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pss_kb(self):
        """PSS of the server and its children (a forked saver)."""
        total = 0
        pids = [self.proc.pid]
        try:
            kids = open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)).read()
            pids += [int(p) for p in kids.split()]
        except OSError:
            pass
        for pid in pids:
            try:
                for line in open("/proc/%d/smaps_rollup" % pid):
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total


def restart_time(kind, keys):
    work = tempfile.mkdtemp(prefix="granary-bench-")
    try:
        s = Server(kind, work)
        _, c = s.start()
        c.cmd("DEBUG", "POPULATE", keys)
        c.cmd("SAVE")
        s.stop()
        took, c = s.start()
        n = int(c.cmd("DBSIZE"))
        assert n == keys, (kind, n, keys)
        s.stop()
        return took
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bgsave_under_writes(kind, keys):
    work = tempfile.mkdtemp(prefix="granary-bench-")
    s = Server(kind, work)
    try:
        _, c = s.start()
        c.cmd("DEBUG", "POPULATE", keys)
        writer = subprocess.Popen(
            ["taskset", "-c", CLIENT_CORE, "redis-benchmark", "-p", str(s.port), "-t", "set",
             "-r", str(keys), "-n", "1000000000", "-P", "16", "-c", "4", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # writes flowing before the save
        base = s.pss_kb()
        worst = [0.0]
        peak = [base]
        done = threading.Event()

        def ping():
            p = Conn(s.port)
            while not done.is_set():
                t = time.monotonic()
                p.cmd("PING")
                worst[0] = max(worst[0], time.monotonic() - t)
                time.sleep(0.001)

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], s.pss_kb())
                time.sleep(0.02)

        threads = [threading.Thread(target=ping)]
        if not os.environ.get("NOSAMPLE"):
            threads.append(threading.Thread(target=sample))
        saves = int(c.info("persistence")["rdb_saves"])
        started = time.monotonic()
        for t in threads:
            t.start()
        c.cmd("BGSAVE")
        while True:
            info = c.info("persistence")
            if info["rdb_bgsave_in_progress"] == "0" and int(info["rdb_saves"]) > saves:
                break
            time.sleep(0.01)
        took = time.monotonic() - started
        done.set()
        for t in threads:
            t.join()
        writer.kill()
        writer.wait()
        fork_us = c.info("stats").get("latest_fork_usec", "0")
        return took, worst[0] * 1000, peak[0] / max(base, 1), int(fork_us)
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def aof_throughput(kind, fsync, requests=2_000_000):
    """SET req/s with AOF off (fsync None) or on with that appendfsync."""
    work = tempfile.mkdtemp(prefix="granary-bench-")
    s = Server(kind, work)
    try:
        extra = [] if fsync is None else ["--appendonly", "yes", "--appendfsync", fsync]
        s.start(extra)
        time.sleep(0.5)  # the first AOF rewrite (an empty base) settles
        out = subprocess.run(
            ["taskset", "-c", CLIENT_CORE, "redis-benchmark", "-p", str(s.port), "-t", "set",
             "-r", "1000000", "-n", str(requests), "-P", "16", "-c", "50", "-q"],
            capture_output=True, text=True, check=True).stdout
        line = out.strip().splitlines()[-1].split("\r")[-1]
        return float(line.split(":", 1)[1].split("requests")[0])
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", default="1000000,10000000")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", default="restart,bgsave,aof")
    args = ap.parse_args()
    sizes = [int(k) for k in args.keys.split(",")]
    only = args.only.split(",")
    if "aof" in only:
        print("| appendonly | granary SET/s | redis SET/s | ratio |")
        print("|---|---:|---:|---:|")
        for fsync in (None, "everysec", "always"):
            runs = {k: [] for k in ("granary", "redis")}
            for _ in range(args.rounds):
                for kind in ("granary", "redis"):
                    runs[kind].append(aof_throughput(kind, fsync))
            g, r = max(runs["granary"]), max(runs["redis"])
            print("| %s | %.0f | %.0f | x%.2f |" % (fsync or "no (off)", g, r, g / r))
            sys.stdout.flush()
    if not {"restart", "bgsave"} & set(only):
        return
    print("| keys | measure | granary | redis | ratio |")
    print("|---:|---|---:|---:|---:|")
    for n in sizes:
        rt = {k: [] for k in ("granary", "redis")}
        bg = {k: [] for k in ("granary", "redis")}
        for _ in range(args.rounds):
            for kind in ("granary", "redis"):  # interleaved
                rt[kind].append(restart_time(kind, n))
                bg[kind].append(bgsave_under_writes(kind, n))
        g, r = min(rt["granary"]), min(rt["redis"])
        print("| %d | restart (s) | %.2f | %.2f | x%.2f |" % (n, g, r, g / r))
        gb = min(bg["granary"]), min(bg["redis"])
        print("| %d | BGSAVE under writes (s) | %.2f | %.2f | x%.2f |"
              % (n, gb[0][0], gb[1][0], gb[0][0] / gb[1][0]))
        print("| %d | longest PING during BGSAVE (ms) | %.1f | %.1f (fork %.1f ms) | |"
              % (n, gb[0][1], gb[1][1], gb[1][3] / 1000))
        print("| %d | peak memory during BGSAVE / before | x%.2f | x%.2f | |"
              % (n, gb[0][2], gb[1][2]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
