"""redis-py's client-side caching (RESP3 + cache_config) against Granary:
reads are served from the local cache until the server's invalidation
push arrives. Every wait polls with a deadline."""

import time

import pytest
from redis.cache import CacheConfig


def get_calls(r):
    """How many GETs the server has run (INFO commandstats)."""
    stats = r.info("commandstats")
    return stats.get("cmdstat_get", {}).get("calls", 0)


def eventually(check, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.01)
    pytest.fail("condition not met before the deadline")


def test_cached_reads_and_invalidation(granary):
    cached = granary.client(protocol=3, cache_config=CacheConfig(), decode_responses=True)
    writer = granary.client(decode_responses=True)
    writer.set("k", "v1")
    assert cached.get("k") == "v1"
    before = get_calls(writer)
    # Served locally: the server sees no GET.
    for _ in range(5):
        assert cached.get("k") == "v1"
    assert get_calls(writer) == before
    assert cached.get_cache().size == 1
    writer.set("k", "v2")
    # The invalidation push evicts the entry; the next read goes to the server.
    eventually(lambda: cached.get("k") == "v2")
    tracking = cached.client_trackinginfo()
    assert "on" in [f.decode() if isinstance(f, bytes) else f for f in tracking["flags"]]


def test_flushall_empties_the_cache(granary):
    cached = granary.client(protocol=3, cache_config=CacheConfig(), decode_responses=True)
    writer = granary.client(decode_responses=True)
    writer.mset({"a": "1", "b": "2"})
    assert cached.get("a") == "1"
    assert cached.get("b") == "2"
    writer.flushall()
    eventually(lambda: cached.get("a") is None and cached.get("b") is None)
