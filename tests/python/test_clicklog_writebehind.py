"""The click-log example (examples/clicklog) on small loads: write-behind to
SQLite and to a PostgreSQL the script starts itself, while two writers
pipeline, with kill -9 of Granary and a PostgreSQL outage; the tables must
equal what the script computed itself."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GRANARY_BIN, REPO

SCRIPT = REPO / "examples" / "clicklog" / "clicklog.py"
SMALL = ["--users", "100", "--recs", "20", "--reads", "5000"]
HAS_POSTGRES = any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
needs_postgres = pytest.mark.skipif(
    not HAS_POSTGRES,
    reason="PostgreSQL binaries absent (/usr/lib/postgresql/*/bin/initdb); "
           "scripts/test.sh installs them")




def run(*args):
    env = dict(os.environ, GRANARY_BIN=str(GRANARY_BIN))
    out = subprocess.run([sys.executable, str(SCRIPT), *SMALL, *args],
                         capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_clicklog_sqlite_tables_equal_the_model():
    out = run("--sink", "sqlite")
    assert "OK: SQLite tables equal" in out, out


@needs_postgres
def test_clicklog_postgres_survives_kill9():
    out = run("--sink", "postgres", "--kill9", "2", "--pg-outage", "0")
    assert out.count("; restarted") == 2, out
    assert "OK: PostgreSQL tables equal" in out, out


@needs_postgres
def test_clicklog_postgres_outage_backlog_rises_and_drains():
    out = run("--sink", "postgres", "--pg-outage", "3")
    down = [line.split() for line in out.splitlines() if " pg down " in line]
    assert down, out
    # The backlog grows while PostgreSQL is down, and the flush failures show.
    pending = [int(f[3]) for f in down]  # t, "pg", "down", pending_rows
    assert pending[-1] > pending[0], out
    assert any("draining" in line and line.split()[2] == "0" for line in out.splitlines()), out
    assert "OK: PostgreSQL tables equal" in out, out
