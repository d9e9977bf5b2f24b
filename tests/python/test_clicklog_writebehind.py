"""The click-log example (examples/clicklog) on a small load: write-behind
to SQLite while two writers pipeline, then the tables must equal what the
script computed itself."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import GRANARY_BIN, REPO


def test_clicklog_tables_equal_the_model():
    env = dict(os.environ, GRANARY_BIN=str(GRANARY_BIN))
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "clicklog" / "clicklog.py"),
         "--users", "100", "--recs", "20", "--reads", "5000"],
        capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: SQLite tables equal" in out.stdout, out.stdout
