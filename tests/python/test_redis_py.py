"""redis-py 8 against Granary, over RESP2 and RESP3."""

import os
import socket
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import HOST, PASSWORD

# redis-py retries connection errors (auth failures included) with backoff.
NO_RETRY = Retry(NoBackoff(), 0)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def protocol(request):
    return request.param


@pytest.fixture
def r(granary, protocol):
    client = granary.client(protocol=protocol)
    yield client
    client.close()


@pytest.fixture
def rd(granary, protocol):
    """A client that decodes replies to str."""
    client = granary.client(protocol=protocol, decode_responses=True)
    yield client
    client.close()


def raw_exchange(port, payload, replies):
    """Sends raw bytes and reads until `replies` CRLF-terminated replies
    (simple strings, errors, integers, or RESP3 maps of them) have arrived."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(payload)
        buf = b""
        while buf.count(b"\r\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


# --- connection handshake -------------------------------------------------


def test_hello3_handshake_metadata(granary):
    client = granary.client(protocol=3)
    assert client.ping() is True
    conn = client.connection_pool.get_connection()
    try:
        meta = {k.decode() if isinstance(k, bytes) else k: v for k, v in conn.handshake_metadata.items()}
    finally:
        client.connection_pool.release(conn)
    assert meta["proto"] == 3
    assert {"server", "version", "id", "mode", "role", "modules"} <= set(meta)


def test_setinfo_lib_name_and_version_recorded(rd):
    """The handshake's CLIENT SETINFO LIB-NAME/LIB-VER show in CLIENT INFO."""
    info = rd.client_info()
    assert info["lib-name"] == "redis-py"
    assert info["lib-ver"] == redis.__version__


def test_optional_handshake_errors_keep_connection_usable(granary):
    """The exact sequence redis-py 8 sends with protocol=3: the server may
    refuse CLIENT MAINT_NOTIFICATIONS (Redis 7.4 does), and the connection
    must go on working after that error reply."""
    payload = (
        b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
        b"*5\r\n$6\r\nCLIENT\r\n$19\r\nMAINT_NOTIFICATIONS\r\n$2\r\nON\r\n"
        b"$20\r\nmoving-endpoint-type\r\n$11\r\ninternal-ip\r\n"
        b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$8\r\nLIB-NAME\r\n$8\r\nredis-py\r\n"
        b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n$7\r\nLIB-VER\r\n$5\r\n8.1.0\r\n"
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n"
        b"*1\r\n$4\r\nPING\r\n"
    )
    with socket.create_connection((HOST, granary.port), timeout=10) as s:
        s.sendall(payload)
        buf = b""
        while not buf.endswith(b"+PONG\r\n"):
            chunk = s.recv(65536)
            assert chunk, f"connection closed; got {buf!r}"
            buf += chunk
    after_hello = buf[buf.index(b"-ERR") :]
    assert after_hello == (
        b"-ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP.\r\n"
        b"+OK\r\n+OK\r\n+OK\r\n+PONG\r\n"
    )


def test_resp3_client_works_with_maint_notifications_auto(granary):
    client = granary.client(protocol=3, db=1)
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"


def test_select_db_1_isolated_from_db_0(granary, protocol):
    db0 = granary.client(protocol=protocol, db=0)
    db1 = redis.Redis.from_url(granary.url(db=1), protocol=protocol)
    assert db1.set("shared", "in-db-1") is True
    assert db0.get("shared") is None
    assert db1.get("shared") == b"in-db-1"
    assert db1.connection_pool.get_connection().db == 1


# --- strings ---------------------------------------------------------------


def test_get_set_basic(r):
    assert r.get("missing") is None
    assert r.set("k", "hello") is True
    assert r.get("k") == b"hello"
    assert r.set("k", b"\x00\xffbinary") is True
    assert r.get("k") == b"\x00\xffbinary"


def test_set_ex_px(r):
    assert r.set("ex", "v", ex=100) is True
    assert 99 <= r.ttl("ex") <= 100
    assert r.set("px", "v", px=100_000) is True
    assert 99_000 <= r.pttl("px") <= 100_000


def test_set_px_expires(r):
    assert r.set("short", "v", px=50) is True
    deadline = time.monotonic() + 5
    while r.get("short") is not None:
        assert time.monotonic() < deadline, "key with px=50 never expired"
        time.sleep(0.01)
    assert r.exists("short") == 0


def test_set_nx_xx(r):
    assert r.set("k", "1", xx=True) is None
    assert r.get("k") is None
    assert r.set("k", "1", nx=True) is True
    assert r.set("k", "2", nx=True) is None
    assert r.get("k") == b"1"
    assert r.set("k", "3", xx=True) is True
    assert r.get("k") == b"3"


def test_set_get_option_and_keepttl(r):
    r.set("k", "old", ex=100)
    assert r.set("k", "new", get=True, keepttl=True) == b"old"
    assert r.get("k") == b"new"
    assert r.ttl("k") > 0


def test_mget_mset(r):
    assert r.mset({"a": "1", "b": "2", "c": "3"}) is True
    assert r.mget(["a", "b", "missing", "c"]) == [b"1", b"2", None, b"3"]
    assert r.msetnx({"c": "x", "d": "4"}) is False
    assert r.get("d") is None


def test_incr_family(r):
    assert r.incr("n") == 1
    assert r.incr("n", 10) == 11
    assert r.decr("n", 2) == 9
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.incrbyfloat("f", "0.1") == pytest.approx(1.6)
    assert r.get("f") == b"1.6"
    r.set("s", "abc")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr("s")
    with pytest.raises(redis.ResponseError, match="value is not a valid float"):
        r.incrbyfloat("s", 1)


def test_expire_ttl_persist(r):
    assert r.expire("missing", 10) is False
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.ttl("missing") == -2
    assert r.expire("k", 100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.persist("k") is True
    assert r.ttl("k") == -1
    assert r.persist("k") is False
    assert r.pexpire("k", 100_000) is True
    assert 99_000 <= r.pttl("k") <= 100_000
    assert r.expire("k", 200, gt=True) is True
    assert r.expire("k", 50, gt=True) is False


def test_scan_iter_match(rd):
    users = {f"user:{i}" for i in range(1000)}
    rd.mset({k: "1" for k in users})
    rd.mset({f"other:{i}": "1" for i in range(500)})
    # SCAN may return a key twice but never misses one present throughout.
    found = set(rd.scan_iter(match="user:*", count=100))
    assert found == users
    assert set(rd.scan_iter(match="other:1?")) == {f"other:{i}" for i in range(10, 20)}
    assert rd.dbsize() == 1500


def test_keys_and_delete(r):
    r.mset({"a1": "1", "a2": "2", "b1": "3"})
    assert sorted(r.keys("a*")) == [b"a1", b"a2"]
    assert r.delete("a1", "a2", "nope") == 2
    assert r.exists("a1", "b1") == 1


def test_unknown_command_error_keeps_connection(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("NOSUCHCOMMAND", "x")
    assert str(e.value) == "unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' "
    assert r.ping() is True


# --- pipelines and big values ----------------------------------------------


def test_pipeline_10k(r):
    pipe = r.pipeline(transaction=False)
    for i in range(10_000):
        pipe.set(f"key:{i}", i)
    assert pipe.execute() == [True] * 10_000
    pipe = r.pipeline(transaction=False)
    for i in range(10_000):
        pipe.get(f"key:{i}")
    assert pipe.execute() == [str(i).encode() for i in range(10_000)]
    assert r.dbsize() == 10_000


def test_pipeline_error_in_the_middle(r):
    r.set("text", "abc")
    pipe = r.pipeline(transaction=False)
    pipe.set("a", 1).incr("text").incr("a").get("a")
    results = pipe.execute(raise_on_error=False)
    assert results[0] is True
    assert isinstance(results[1], redis.ResponseError)
    assert results[2:] == [2, b"2"]


def test_50mb_value_round_trip(r):
    value = os.urandom(50 * 1024 * 1024)
    assert r.set("big", value) is True
    assert r.strlen("big") == len(value)
    got = r.get("big")
    assert len(got) == len(value)
    assert got == value


# --- authentication --------------------------------------------------------


def test_password_in_url(granary_auth, protocol):
    client = redis.Redis.from_url(f"redis://:{PASSWORD}@{HOST}:{granary_auth.port}/1", protocol=protocol)
    assert client.ping() is True
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert client.connection_pool.get_connection().db == 1


def test_wrong_password_rejected(granary_auth, protocol):
    url = f"redis://:wrong@{HOST}:{granary_auth.port}/0"
    client = redis.Redis.from_url(url, protocol=protocol, retry=NO_RETRY)
    with pytest.raises(redis.AuthenticationError, match="WRONGPASS|invalid username-password pair"):
        client.ping()


def test_no_password_gets_noauth(granary_auth, protocol):
    client = redis.Redis(host=HOST, port=granary_auth.port, protocol=protocol, retry=NO_RETRY)
    # RESP2 fails on the first command; RESP3 already on HELLO 3.
    if protocol == 2:
        expected = "Authentication required"
    else:
        expected = "HELLO must be called with the client already authenticated"
    with pytest.raises(redis.AuthenticationError, match=expected):
        client.get("k")


def test_wrong_password_raw_reply(granary_auth):
    reply = raw_exchange(granary_auth.port, b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n*1\r\n$4\r\nPING\r\n", 2)
    assert reply == (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        b"-NOAUTH Authentication required.\r\n"
    )


# --- scripting (not implemented yet) ----------------------------------------


def test_eval_returns_error_reply_not_a_dropped_connection(r):
    try:
        result = r.eval("return 1", 0)
    except redis.ResponseError:
        pass  # Lua not implemented: an error reply is the right failure.
    else:
        assert result == 1  # Lua implemented.
    # The same connection still works afterwards.
    assert r.set("after", "eval") is True
    assert r.get("after") == b"eval"
