"""A Django app using Granary as its cache, through django-redis."""

import os
import time
from statistics import median

import pytest
import redis

from conftest import HOST, PASSWORD

SLOW_VIEW_URL = "/report/2024/"


@pytest.fixture(scope="module")
def django_server(granary_module):
    """Points django_app.settings at this module's server, then sets Django up."""
    os.environ["GRANARY_PORT"] = str(granary_module.port)
    import django
    from django.conf import settings

    django.setup()
    assert settings.CACHES["default"]["LOCATION"] == f"redis://127.0.0.1:{granary_module.port}/1"
    return granary_module


@pytest.fixture
def cache(django_server):
    from django.core.cache import cache

    cache.clear()
    return cache


@pytest.fixture
def raw_db1(django_server):
    """A plain redis-py client on the cache's database, to look behind Django."""
    client = django_server.client(db=1)
    yield client
    client.close()


def timed_get(client, url):
    started = time.perf_counter()
    response = client.get(url)
    return response, time.perf_counter() - started


def test_cache_aside_view_is_fast_on_second_request(cache, raw_db1):
    from django.test import Client
    from django_app.views import SLOW_QUERY_S

    client = Client()
    first, first_s = timed_get(client, SLOW_VIEW_URL)
    assert first.status_code == 200
    assert first_s >= SLOW_QUERY_S
    data = first.json()
    assert data["year"] == 2024 and len(data["months"]) == 12

    hits = []
    for _ in range(20):
        response, seconds = timed_get(client, SLOW_VIEW_URL)
        assert response.status_code == 200
        # Same computed_at: the payload came from the cache, not the view.
        assert response.json() == data
        hits.append(seconds)
    assert first_s / hits[0] >= 5, f"miss {first_s:.3f}s, first hit {hits[0]:.3f}s"
    assert first_s / median(hits) >= 5, f"miss {first_s:.3f}s, median hit {median(hits):.3f}s"
    assert 3590 <= raw_db1.ttl(":1:report:2024") <= 3600


def test_get_set_with_timeout(cache):
    assert cache.get("missing") is None
    assert cache.get("missing", default="dflt") == "dflt"
    assert cache.set("obj", {"a": 1, "b": [1, 2]}, timeout=100) is True
    assert cache.get("obj") == {"a": 1, "b": [1, 2]}
    assert 99 <= cache.ttl("obj") <= 100
    cache.set("forever", "v", timeout=None)
    assert cache.ttl("forever") is None
    assert cache.add("obj", "other") is False
    assert cache.add("new", "added", timeout=10) is True
    assert cache.get("new") == "added"
    assert cache.delete("obj") is True
    assert cache.get("obj") is None


def test_set_with_short_timeout_expires(cache):
    cache.set("brief", "v", timeout=0.05)
    deadline = time.monotonic() + 5
    while cache.get("brief") is not None:
        assert time.monotonic() < deadline, "cache entry never expired"
        time.sleep(0.01)


def test_get_many_set_many(cache):
    cache.set_many({"a": 1, "b": "two", "c": [3]}, timeout=100)
    assert cache.get_many(["a", "b", "c", "zz"]) == {"a": 1, "b": "two", "c": [3]}
    assert cache.delete_many(["a", "b"]) == 2
    assert cache.get_many(["a", "b", "c"]) == {"c": [3]}


def test_incr_decr_keep_ttl(cache):
    cache.set("n", 10, timeout=100)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n", 6) == 10
    assert cache.get("n") == 10
    assert 0 < cache.ttl("n") <= 100


# django-redis runs INCR as a Lua script (EXISTS then INCRBY), whose
# error for a missing key it turns into ValueError.
def test_incr_missing_key_raises_value_error(cache):
    with pytest.raises(ValueError):
        cache.incr("missing")


def test_ttl_persist_expire_touch(cache):
    cache.set("k", "v", timeout=100)
    assert 99 <= cache.ttl("k") <= 100
    assert 99_000 <= cache.pttl("k") <= 100_000
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.expire("k", 50) is True
    assert 49 <= cache.ttl("k") <= 50
    assert cache.touch("k", 10) is True
    assert 9 <= cache.ttl("k") <= 10
    assert cache.touch("k", None) is True
    assert cache.ttl("k") is None
    assert cache.touch("missing", 10) is False
    assert cache.ttl("missing") == 0


def test_delete_pattern(cache):
    cache.set_many({f"user:{i}": i for i in range(50)})
    cache.set_many({f"other:{i}": i for i in range(5)})
    assert cache.delete_pattern("user:*") == 50
    assert sorted(cache.keys("*")) == sorted(f"other:{i}" for i in range(5))


def test_keys_and_iter_keys(cache):
    # set, not set_many: set_many pipelines inside MULTI/EXEC.
    for i in range(300):
        cache.set(f"user:{i}", i)
    cache.set("unrelated", 1)
    expected = {f"user:{i}" for i in range(300)}
    assert set(cache.keys("user:*")) == expected
    assert set(cache.iter_keys("user:*", itersize=50)) == expected


def test_clear_flushes_only_the_cache_db(cache, django_server):
    db0 = django_server.client(db=0)
    db0.set("outside-cache", "keep")
    cache.set("a", 1)
    cache.set("b", 2)
    cache.clear()
    assert cache.get_many(["a", "b"]) == {}
    assert cache.keys("*") == []
    assert db0.get("outside-cache") == b"keep"
    db0.delete("outside-cache")


def caches_setting(port, password):
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://:{password}@127.0.0.1:{port}/1",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }


def test_password_in_location(django_server, granary_auth):
    from django.core.cache import caches
    from django.test import override_settings

    with override_settings(CACHES=caches_setting(granary_auth.port, PASSWORD)):
        cache = caches["default"]
        assert cache.set("k", {"v": 1}, timeout=60) is True
        assert cache.get("k") == {"v": 1}
    behind = redis.Redis(host=HOST, port=granary_auth.port, password=PASSWORD, db=1)
    assert behind.exists(":1:k") == 1


def test_wrong_password_in_location(django_server, granary_auth):
    from django.core.cache import caches
    from django.test import override_settings

    with override_settings(CACHES=caches_setting(granary_auth.port, "wrong")):
        with pytest.raises(redis.AuthenticationError, match="WRONGPASS|invalid username-password pair"):
            caches["default"].get("k")
