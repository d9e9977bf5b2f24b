#!/usr/bin/env python3
"""Side-by-side throughput of bitmaps, HyperLogLog and geo: Granary vs
redis-server (issue 6's measurements). BITCOUNT and BITOP over 16 MB
strings (memory speed is the goal: word-at-a-time, not bit by bit),
SETBIT, PFADD of new elements, PFCOUNT over three
keys (a merge each time, no cached cardinality), GEOADD, and GEOSEARCH of
the 10 nearest among 1M points. Method: scripts/benchlib.py.

    scripts/types_throughput.py [--rounds 5] [--requests 1000000]
        [--granary target/release/granary] [--only BITCOUNT]
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import resp, run  # noqa: E402

MB16 = 16 << 20


def random_string(key, size, seed):
    rng = random.Random(seed)
    return [resp("SET", key, rng.randbytes(size))]


def hll(key, n, seed):
    return [resp("PFADD", key, *(f"{seed}:{i}" for i in range(j, min(j + 1000, n))))
            for j in range(0, n, 1000)]


def geo_points(key, n):
    rng = random.Random(7)
    cmds = []
    for j in range(0, n, 1000):
        args = []
        for i in range(j, min(j + 1000, n)):
            # Around Berlin: a dense city-sized cloud, as a delivery app has.
            args += [f"{13.0 + rng.random() * 0.8:.6f}", f"{52.3 + rng.random() * 0.4:.6f}", f"p{i}"]
        cmds.append(resp("GEOADD", key, *args))
    return cmds


RAND = ["-r", "100000000"]

WORKLOADS = {
    "BITCOUNT 16 MB": (random_string("big", MB16, 1), ["BITCOUNT", "big"], 2000),
    "BITOP AND 2 x 16 MB": (
        random_string("a", MB16, 1) + random_string("b", MB16, 2),
        ["BITOP", "AND", "dest", "a", "b"], 4000),
    # redis-benchmark's __rand_int__ is zero-padded, which no bit offset
    # parser accepts: SETBIT runs at a fixed offset of a 16 MB string.
    "SETBIT in 16 MB": (random_string("big", MB16, 1), ["SETBIT", "big", "100000000", "1"], 1),
    "PFADD new element": ([], ["PFADD", "hll", "el:__rand_int__"], 1, RAND),
    "PFCOUNT 3 keys x 100k": (
        hll("h1", 100_000, 1) + hll("h2", 100_000, 2) + hll("h3", 100_000, 3),
        ["PFCOUNT", "h1", "h2", "h3"], 100),
    "GEOADD random member": (
        [], ["GEOADD", "g", "13.361389", "52.515556", "m:__rand_int__"], 1, RAND),
    "GEOSEARCH 1 km COUNT 10 of 1M": (
        geo_points("pts", 1_000_000),
        ["GEOSEARCH", "pts", "FROMLONLAT", "13.4", "52.5", "BYRADIUS", "1", "km", "ASC", "COUNT", "10"],
        20),
}

if __name__ == "__main__":
    run(WORKLOADS, __doc__)
