#!/usr/bin/env python3
"""Load N keys into a server while another client pings it; report ping latency.

Shows whether the keyspace's growth stalls the server (a whole-table rehash
does; incremental rehashing must not). Runs Granary and, for comparison,
redis-server, one after the other, each fresh on a free port.

    scripts/growth_latency.py --keys 10000000 [--granary target/release/granary] [--no-redis]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not answer PING")


def pinger(port, stop, samples):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stop.is_set():
            t0 = time.perf_counter()
            s.sendall(b"PING\r\n")
            buf = b""
            while not buf.endswith(b"\r\n"):
                buf += s.recv(64)
            samples.append((time.perf_counter() - t0) * 1000.0)
            time.sleep(0.001)


def load(port, keys):
    """Streams N distinct SETs through redis-cli --pipe."""
    cli = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    batch = []
    for i in range(keys):
        k = b"key:%012d" % i
        batch.append(b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$16\r\nvalue%011d\r\n" % (k, i))
        if len(batch) == 10000:
            cli.stdin.write(b"".join(batch))
            batch.clear()
    cli.stdin.write(b"".join(batch))
    cli.stdin.close()
    out = cli.stdout.read().decode(errors="replace")
    cli.wait()
    return out


def run(name, cmd, keys):
    port = free_port()
    proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_ping(port)
        stop, samples = threading.Event(), []
        t = threading.Thread(target=pinger, args=(port, stop, samples))
        t.start()
        t0 = time.time()
        out = load(port, keys)
        secs = time.time() - t0
        stop.set()
        t.join()
        samples.sort()
        p999 = samples[int(len(samples) * 0.999) - 1] if samples else float("nan")
        print(f"{name:8} keys={keys} load={secs:.1f}s pings={len(samples)} "
              f"median={statistics.median(samples):.3f}ms p99.9={p999:.3f}ms max={samples[-1]:.3f}ms")
        if "errors: 0" not in out:
            print(f"  redis-cli --pipe said: {out.strip()}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=10_000_000)
    ap.add_argument("--granary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "granary"))
    ap.add_argument("--no-redis", action="store_true")
    a = ap.parse_args()
    run("granary", [a.granary, "--port", "{port}", "--save", ""], a.keys)
    if not a.no_redis:
        run("redis", ["redis-server", "--port", "{port}", "--save", "", "--appendonly", "no"], a.keys)


if __name__ == "__main__":
    main()
