#!/usr/bin/env python3
"""Side-by-side throughput of stream commands: Granary vs redis-server.

XADD (auto IDs, with and without MAXLEN ~ trimming), XREADGROUP of new
entries (`>`, each request consumes entries preloaded for it) and of a
consumer's history, XRANGE and XREAD. Method as compare.sh and
scripts/collection_throughput.py: each workload runs against a fresh server
pinned to one CPU (redis-benchmark on the other), servers interleaved
within a round with the order rotating, and the ratio reported is the
median of the per-round paired ratios.

    scripts/stream_bench.py [--rounds 5] [--requests 1000000]
        [--granary target/release/granary] [--only XADD]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import resp, run  # noqa: E402


def xadds(key, n, fields=("field", "value")):
    return [resp("XADD", key, f"{i + 1}-1", *fields) for i in range(n)]


def group_at_zero(key):
    return [resp("XGROUP", "CREATE", key, "g", "0")]


# name -> (setup commands, redis-benchmark command, cost: requests are
# --requests / cost, so that every workload runs for a few seconds).
# XREADGROUP `>` consumes what it reads: its setup preloads one entry per
# request (see `preload`).
WORKLOADS = {
    "XADD * 1 field": ([], ["XADD", "s", "*", "field", "value"], 1),
    "XADD MAXLEN ~ 10000 * 2 fields": (
        [], ["XADD", "s", "MAXLEN", "~", "10000", "*", "f1", "v1", "f2", "v2"], 1),
    "XREADGROUP > COUNT 1": (
        lambda requests: preload(requests), ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"], 2),
    "XREADGROUP history COUNT 10": (
        xadds("s", 100) + group_at_zero("s")
        + [resp("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")],
        ["XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "s", "0"], 4),
    "XRANGE - + COUNT 10 of 1k": (
        xadds("s", 1000), ["XRANGE", "s", "-", "+", "COUNT", "10"], 2),
    "XREAD COUNT 10 of 1k": (
        xadds("s", 1000), ["XREAD", "COUNT", "10", "STREAMS", "s", "0"], 2),
}


def preload(requests):
    """Setup of XREADGROUP >: one entry per request, a group at 0."""
    return xadds("s", requests) + group_at_zero("s")


if __name__ == "__main__":
    run(WORKLOADS, __doc__)
