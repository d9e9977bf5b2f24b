#!/usr/bin/env python3
"""Side-by-side throughput of collection commands compare.sh does not cover.

../shared/bench/compare.sh measures LPUSH, LPOP, SADD, HSET, ZADD and INCR
(its workload c); this script adds the reads of the click-log story: SINTER
of a recommendation set with a read set, and SINTER/SMEMBERS/HGETALL/
LRANGE/ZRANGE over preloaded collections. Method as compare.sh: each
workload runs against a fresh server pinned to one CPU (redis-benchmark on
the other), servers interleaved within a round with the order rotating,
and the ratio reported is the median of the per-round paired ratios.

    scripts/collection_throughput.py [--rounds 5] [--requests 1000000]
        [--granary target/release/granary] [--only SINTER]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import resp, run  # noqa: E402


def sadd(key, members):
    return [resp("SADD", key, *members)]


# name -> (setup commands, redis-benchmark command, cost: requests are
# --requests / cost, so that every workload runs for a few seconds)
WORKLOADS = {
    "SINTER 50 x 100 ints": (
        sadd("rec", range(0, 100, 2)) + sadd("read", range(50, 150)),
        ["SINTER", "rec", "read"],
        1,
    ),
    "SINTER 1k x 1k strings": (
        sadd("a", (f"item:{i}" for i in range(1000)))
        + sadd("b", (f"item:{i}" for i in range(500, 1500))),
        ["SINTER", "a", "b"],
        20,
    ),
    "SINTERCARD 3 x 10k": (
        sadd("x", (f"m{i}" for i in range(10_000)))
        + sadd("y", (f"m{i}" for i in range(0, 20_000, 2)))
        + sadd("z", (f"m{i}" for i in range(0, 30_000, 3))),
        ["SINTERCARD", "3", "x", "y", "z"],
        200,
    ),
    "SMEMBERS 100": (sadd("s", (f"item:{i}" for i in range(100))), ["SMEMBERS", "s"], 4),
    "HGETALL 5 fields": (
        [resp("HSET", "h", "readAt", "1700000000000", "isRecommended", "1",
              "user", "42", "item", "4711", "source", "web")],
        ["HGETALL", "h"],
        1,
    ),
    "LRANGE 0 49 of 50": (
        [resp("RPUSH", "l", *(f"item:{i}" for i in range(50)))],
        ["LRANGE", "l", "0", "49"],
        2,
    ),
    "ZRANGE 0 9 of 1k": (
        [resp("ZADD", "z", *(x for i in range(1000) for x in (i * 1.5, f"m{i}")))],
        ["ZRANGE", "z", "0", "9", "WITHSCORES"],
        1,
    ),
}


if __name__ == "__main__":
    run(WORKLOADS, __doc__)
