"""redis-cli and raw inline commands against Granary."""

import os
import shutil
import socket
import subprocess

import pytest

import redis

from conftest import HOST


def cli(redis_cli, server, *args, stdin=None, timeout=60):
    """Runs redis-cli against `server`; returns (exit code, stdout)."""
    proc = subprocess.run(
        [redis_cli, "-h", HOST, "-p", str(server.port), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout


def inline(port, lines, expected_replies):
    """Sends inline commands (what telnet users type) and reads replies."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(b"".join(line + b"\r\n" for line in lines))
        buf = b""
        while buf.count(b"\r\n") < expected_replies:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


def test_cli_ping(redis_cli, granary):
    assert cli(redis_cli, granary, "PING") == (0, b"PONG\n")


def test_cli_set_get(redis_cli, granary):
    assert cli(redis_cli, granary, "SET", "greeting", "hello world") == (0, b"OK\n")
    assert cli(redis_cli, granary, "GET", "greeting") == (0, b"hello world\n")
    assert cli(redis_cli, granary, "-n", "1", "GET", "greeting") == (0, b"\n")


def test_inline_ping(granary):
    assert inline(granary.port, [b"PING"], 1) == b"+PONG\r\n"


def test_inline_quoted_args(granary):
    reply = inline(granary.port, [b'SET a "b c"', b"GET a", b"SET e 'x\\ny'", b'SET h "\\x41\\n"'], 5)
    assert reply == b"+OK\r\n$3\r\nb c\r\n+OK\r\n+OK\r\n"
    client = redis.Redis(host=HOST, port=granary.port)
    assert client.get("a") == b"b c"
    # Single quotes keep backslashes; double quotes interpret escapes.
    assert client.get("e") == b"x\\ny"
    assert client.get("h") == b"A\n"


def test_inline_unbalanced_quotes_is_protocol_error(granary):
    reply = inline(granary.port, [b'SET a "unterminated'], 1)
    assert reply == b"-ERR Protocol error: unbalanced quotes in request\r\n"


def test_pipe_mass_insertion(redis_cli, granary):
    n = 100_000
    payload = b"".join(
        b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
        for k, v in ((b"key:%d" % i, b"value:%d" % i) for i in range(n))
    )
    code, out = cli(redis_cli, granary, "--pipe", stdin=payload, timeout=120)
    assert code == 0, out
    assert b"errors: 0, replies: 100000" in out
    assert cli(redis_cli, granary, "DBSIZE") == (0, b"100000\n")
    assert cli(redis_cli, granary, "GET", "key:99999") == (0, b"value:99999\n")


def test_command_docs_get(redis_cli, granary):
    """COMMAND DOCS for one command: a map of name to its doc map."""
    code, out = cli(redis_cli, granary, "COMMAND", "DOCS", "get")
    assert code == 0
    lines = out.decode().splitlines()
    assert lines[:2] == ["get", "summary"]
    after = {lines[i]: lines[i + 1] for i in range(len(lines) - 1)}
    assert after["since"] == "1.0.0"
    assert after["group"] == "string"
    assert after["complexity"] == "O(1)"
    assert "arguments" in lines


def test_command_docs_all_is_a_map_of_doc_maps(granary):
    """Interactive redis-cli sends a bare COMMAND DOCS at start-up for its
    hints: every entry must be a doc map with at least summary/since/group."""
    # Read the raw reply: redis-py's COMMAND reply callback would mangle it.
    conn = redis.Connection(host=HOST, port=granary.port, protocol=3)
    conn.send_command("COMMAND", "DOCS")
    docs = conn.read_response()
    conn.disconnect()
    assert isinstance(docs, dict)
    names = {k.decode() for k in docs}
    assert {"get", "set", "ping", "command"} <= names
    for name, doc in docs.items():
        assert isinstance(doc, dict), name
        assert {b"summary", b"since", b"group"} <= set(doc), name


def test_interactive_mode(redis_cli, granary):
    """redis-cli with a terminal (TERM=dumb keeps linenoise from querying the
    cursor): start-up COMMAND DOCS, then commands typed at the prompt."""
    script = shutil.which("script")
    if script is None:
        pytest.skip("util-linux `script` not installed")
    proc = subprocess.run(
        [script, "-qec", f"{redis_cli} -h {HOST} -p {granary.port}", "/dev/null"],
        input=b'PING\nSET a "b c"\nGET a\nquit\n',
        capture_output=True,
        timeout=30,
        env={**os.environ, "TERM": "dumb"},
    )
    out = proc.stdout.decode(errors="replace").replace("\r\n", "\n")
    assert proc.returncode == 0, out
    prompt = f"{HOST}:{granary.port}> "
    assert f"{prompt}PONG\n{prompt}OK\n{prompt}\"b c\"\n" in out, out
    assert "Error" not in out, out


def test_cli_error_reply(redis_cli, granary):
    code, out = cli(redis_cli, granary, "NOSUCHCMD")
    assert out == b"ERR unknown command 'NOSUCHCMD', with args beginning with: \n\n"
