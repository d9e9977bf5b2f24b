"""Fixtures that run a real Granary server for the Python client suite.

Each server is started from the release binary (GRANARY_BIN, by default
target/release/granary in the repository) on a free loopback port, with
persistence off, and stopped by PID when the test is done.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
GRANARY_BIN = Path(os.environ.get("GRANARY_BIN", REPO / "target" / "release" / "granary"))
HOST = "127.0.0.1"
PASSWORD = "s3cret-pw"
START_DEADLINE_S = 10.0

# Django reads its settings lazily, on first use (only test_django.py uses it).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")


def free_port():
    """A port the kernel says is free right now (never 6379)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def answers_ping(port):
    """True once the server replies to PING at all (+PONG or -NOAUTH)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


class Granary:
    """A running server: its port, password and log, and how to reach it."""

    def __init__(self, proc, port, password, log_path):
        self.proc = proc
        self.port = port
        self.password = password
        self.log_path = log_path

    def url(self, db=0, password=None):
        pw = self.password if password is None else password
        auth = f":{pw}@" if pw else ""
        return f"redis://{auth}{HOST}:{self.port}/{db}"

    def client(self, **kwargs):
        kwargs.setdefault("password", self.password)
        kwargs.setdefault("socket_timeout", 30)
        return redis.Redis(host=HOST, port=self.port, **kwargs)

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def start_granary(workdir, password=None):
    """Starts a server and waits (with a deadline) until it answers PING.

    The free port could be taken between our probe and the server's bind,
    so a server that exits at start-up is retried on another port.
    """
    if not GRANARY_BIN.is_file():
        pytest.fail(f"{GRANARY_BIN} not found: run `cargo build --release` or set GRANARY_BIN")
    last_error = ""
    for attempt in range(3):
        port = free_port()
        log_path = workdir / f"granary-{port}.log"
        args = [str(GRANARY_BIN), "--port", str(port), "--bind", HOST, "--save", "", "--dir", str(workdir)]
        if password:
            args += ["--requirepass", password]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Granary(proc, port, password, log_path)
        deadline = time.monotonic() + START_DEADLINE_S
        while proc.poll() is None and time.monotonic() < deadline:
            if answers_ping(port):
                return server
            time.sleep(0.02)
        last_error = server.log_tail()
        stop_granary(server)
    pytest.fail(f"granary did not start after 3 attempts:\n{last_error}")


def stop_granary(server):
    """Terminate by PID, then kill if it does not exit in time."""
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)


def run_server(tmp_path_factory, password=None):
    server = start_granary(tmp_path_factory.mktemp("granary"), password)
    try:
        yield server
    finally:
        crashed = server.proc.poll() is not None
        stop_granary(server)
        # A server that died during the test is a bug even if the client
        # assertions happened to pass.
        if crashed:
            pytest.fail(
                f"granary exited during the test (code {server.proc.returncode}):\n{server.log_tail()}"
            )


@pytest.fixture
def granary(tmp_path_factory):
    """A fresh server per test, so tests never see each other's keys."""
    yield from run_server(tmp_path_factory)


@pytest.fixture
def granary_auth(tmp_path_factory):
    """A fresh server started with --requirepass PASSWORD."""
    yield from run_server(tmp_path_factory, PASSWORD)


@pytest.fixture(scope="module")
def granary_module(tmp_path_factory):
    """One server for a whole module (used by the Django tests)."""
    yield from run_server(tmp_path_factory)


@pytest.fixture
def redis_cli():
    """Path of redis-cli (scripts/test.sh installs it)."""
    path = shutil.which("redis-cli")
    if path is None:
        pytest.fail("redis-cli not found: run scripts/test.sh or apt-get install redis-tools")
    return path
