"""redis-py's PubSub against Granary: subscribe, get_message, psubscribe,
run_in_thread, in RESP2 and RESP3. Every wait polls with a deadline."""

import threading
import time

import pytest


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request):
    return request.param


def next_message(pubsub, deadline_s=10.0):
    """The next real message (confirmations skipped), or fail at the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg is not None:
            return msg
    pytest.fail("no message before the deadline")


def test_subscribe_and_get_message(granary, protocol):
    r = granary.client(protocol=protocol, decode_responses=True)
    p = r.pubsub()
    p.subscribe("news")
    confirm = p.get_message(timeout=5)
    assert confirm == {"type": "subscribe", "pattern": None, "channel": "news", "data": 1}
    assert r.publish("news", "hello") == 1
    assert next_message(p) == {"type": "message", "pattern": None, "channel": "news", "data": "hello"}
    assert r.pubsub_numsub("news") == [("news", 1)]
    assert r.pubsub_channels() == ["news"]
    p.unsubscribe("news")
    assert p.get_message(timeout=5)["type"] == "unsubscribe"
    assert r.publish("news", "nobody") == 0
    p.close()


def test_psubscribe_matches_patterns(granary, protocol):
    r = granary.client(protocol=protocol, decode_responses=True)
    p = r.pubsub()
    p.psubscribe("user:*")
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    assert r.pubsub_numpat() == 1
    assert r.publish("user:42", "login") == 1
    assert r.publish("other", "x") == 0
    msg = next_message(p)
    assert msg == {"type": "pmessage", "pattern": "user:*", "channel": "user:42", "data": "login"}
    p.close()


def test_run_in_thread_delivers_in_order(granary, protocol):
    r = granary.client(protocol=protocol, decode_responses=True)
    p = r.pubsub()
    got = []
    done = threading.Event()

    def handler(msg):
        got.append(msg["data"])
        if len(got) == 50:
            done.set()

    p.subscribe(events=handler)
    worker = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        end = time.monotonic() + 10
        while r.pubsub_numsub("events") != [("events", 1)]:
            assert time.monotonic() < end, "subscription never registered"
            time.sleep(0.01)
        for i in range(50):
            assert r.publish("events", str(i)) == 1
        assert done.wait(10), f"only {len(got)} messages arrived"
        assert got == [str(i) for i in range(50)]
    finally:
        worker.stop()
        worker.join(timeout=10)
        p.close()
