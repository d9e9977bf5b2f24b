"""Distributed locks built on Lua scripts: redis-py's Lock (release, extend
and reacquire are EVALSHA scripts) and django-redis's cache.lock."""

import threading
import time

import pytest
from redis.exceptions import LockError, LockNotOwnedError


def wait_until(predicate, timeout=10.0):
    """Polls `predicate` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def r(granary):
    client = granary.client()
    yield client
    client.close()


def test_acquire_and_release(r):
    lock = r.lock("res", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.owned()
    assert lock.locked()
    other = r.lock("res", timeout=5)
    assert not other.acquire(blocking=False)
    lock.release()
    assert not lock.locked()
    assert r.exists("res") == 0
    assert other.acquire(blocking=False)
    other.release()


def test_release_of_a_lock_owned_by_another_fails(r):
    lock = r.lock("res", timeout=5)
    assert lock.acquire(blocking=False)
    # Someone else's token: the release script must refuse.
    r.set("res", "not-our-token")
    with pytest.raises(LockNotOwnedError):
        lock.release()
    assert r.get("res") == b"not-our-token"


def test_extend_and_reacquire(r):
    lock = r.lock("res", timeout=2)
    assert lock.acquire(blocking=False)
    assert lock.extend(10)
    assert 11_000 <= r.pttl("res") <= 12_000
    assert lock.extend(30, replace_ttl=True)
    assert 29_000 <= r.pttl("res") <= 30_000
    assert lock.reacquire()
    assert 1_000 <= r.pttl("res") <= 2_000
    lock.release()
    with pytest.raises(LockError):
        lock.extend(10)


def test_timeout_expires_the_lock(r):
    lock = r.lock("res", timeout=0.2)
    assert lock.acquire(blocking=False)
    assert wait_until(lambda: r.exists("res") == 0)
    with pytest.raises(LockNotOwnedError):
        lock.extend(1)
    other = r.lock("res", timeout=5)
    assert other.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        lock.release()
    other.release()


def test_blocking_acquire_waits_for_release(granary):
    holder_client, waiter_client = granary.client(), granary.client()
    holder = holder_client.lock("res", timeout=30)
    assert holder.acquire(blocking=False)
    acquired = threading.Event()

    def wait_for_lock():
        lock = waiter_client.lock("res", timeout=30, sleep=0.01)
        if lock.acquire(blocking=True, blocking_timeout=30):
            acquired.set()
            lock.release()

    t = threading.Thread(target=wait_for_lock)
    t.start()
    assert not acquired.wait(0.2)
    holder.release()
    t.join(timeout=30)
    assert acquired.is_set()
    holder_client.close()
    waiter_client.close()


def test_blocking_timeout_gives_up(r):
    holder = r.lock("res", timeout=30)
    assert holder.acquire(blocking=False)
    started = time.monotonic()
    assert not r.lock("res", sleep=0.01).acquire(blocking=True, blocking_timeout=0.3)
    # redis-py stops once another sleep would pass the deadline.
    assert time.monotonic() - started >= 0.2
    holder.release()


def test_context_manager(r):
    with r.lock("res", timeout=5):
        assert r.exists("res") == 1
    assert r.exists("res") == 0


@pytest.fixture
def django_cache(granary):
    """A django-redis cache on this test's server.

    Built directly rather than through settings.CACHES: django_app.settings
    is bound to test_django.py's server, and Django reads it once per
    process. When nothing loaded settings yet, default ones are configured
    for this test only and dropped after it, so test_django.py still loads
    its own.
    """
    from django.conf import settings
    from django.utils.functional import empty

    configured_here = not settings.configured
    if configured_here:
        settings.configure()
    from django_redis.cache import RedisCache

    cache = RedisCache(
        granary.url(db=2),
        {"OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}},
    )
    yield cache
    cache.close()
    if configured_here:
        settings._wrapped = empty


def test_django_cache_lock(granary, django_cache):
    raw = granary.client(db=2)
    with django_cache.lock("job", timeout=5):
        # django-redis prefixes keys with ":<version>:".
        assert raw.exists(":1:job") == 1
        assert not django_cache.lock("job", timeout=5).acquire(blocking=False)
    assert raw.exists(":1:job") == 0
    lock = django_cache.lock("job", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.extend(5)
    lock.release()
    raw.close()


def test_django_incr_uses_lua(django_cache):
    django_cache.set("n", 1)
    assert django_cache.incr("n", 5) == 6
    assert django_cache.decr("n") == 5
    with pytest.raises(ValueError):
        django_cache.incr("missing")
