#!/usr/bin/env python3
"""Pauses during BGSAVE against the same load without a save.

For each key count and server (Granary, then redis-server): DEBUG POPULATE,
then twice: 3 s of redis-benchmark SETs over the same keys (-c 50 -P 16,
on CPU 0; the server on CPU 1) with a pinger sending PING every
millisecond, then the same load during a BGSAVE until it ends. Prints the
longest and the 99th-percentile PING round trip of each run, so a save's
own pauses show against the load's queueing.

    scripts/bgsave_pauses.py [KEYS ...]   (default 1000000 10000000)

KINDS=granary (or redis) measures one server only.

Needs redis-py, redis-server, redis-benchmark, taskset and a release build
(target/release/granary or $GRANARY_BIN).
"""
import os
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRANARY = os.environ.get("GRANARY_BIN", os.path.join(REPO, "target/release/granary"))
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

KEYS = [int(k) for k in sys.argv[1:]] or [1_000_000, 10_000_000]
def run(kind, keys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    d = tempfile.mkdtemp(prefix="bgsave-pauses-")
    binary = GRANARY if kind == "granary" else "redis-server"
    args = ["taskset","-c","1",binary,"--port",str(port),"--save","","--dir",d,"--appendonly","no"]
    if kind == "redis": args += ["--enable-debug-command","yes"]
    srv = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    for _ in range(200):
        try: r.ping(); break
        except Exception: time.sleep(0.05)
    r.execute_command("DEBUG","POPULATE",str(keys))
    def measure(bgsave):
        bench = subprocess.Popen(["taskset","-c","0","redis-benchmark","-p",str(port),"-t","set","-r",str(keys),"-n","1000000000","-c","50","-P","16","-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lat = []
        if bgsave:
            r.execute_command("BGSAVE")
            done = lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0
        else:
            end = time.time() + 3; done = lambda: time.time() > end
        n = 0
        while True:
            t = time.perf_counter(); s.sendall(b"PING\r\n"); s.recv(100); lat.append((time.perf_counter()-t)*1000)
            time.sleep(0.001); n += 1
            if n % 50 == 0 and done(): break
        bench.kill(); bench.wait(); s.close()
        lat.sort()
        return lat[-1], lat[int(len(lat)*0.99)]
    out = []
    for i in range(2):
        out.append(("no save", measure(False)))
        out.append(("BGSAVE", measure(True)))
    srv.kill(); srv.wait()
    shutil.rmtree(d, ignore_errors=True)
    return out
for keys in KEYS:
    for kind in os.environ.get("KINDS", "granary,redis").split(","):
        res = run(kind, keys)
        print(keys, kind, "; ".join("%s max %.1f p99 %.1f" % (n, m, p) for n, (m, p) in res), flush=True)
