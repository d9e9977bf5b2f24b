"""BullMQ (Node.js, almost entirely Lua scripts) running a real job queue
against Granary: tests/bullmq/test.mjs enqueues jobs, a worker processes,
retries and delays them, and the results are checked.

Needs node and npm (scripts/test.sh installs them); the pinned packages
come from tests/bullmq/package-lock.json.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BULLMQ_DIR = Path(__file__).resolve().parents[1] / "bullmq"


def npm_install():
    """Installs the locked packages once (node_modules is not committed).

    `npm install --no-save` rather than `npm ci`: npm ci insists on lock
    entries for every platform's optional native msgpackr build, which some
    registries do not list; without optional packages msgpackr runs in
    pure JavaScript, and the lock file still pins every version.
    """
    if (BULLMQ_DIR / "node_modules" / "bullmq").is_dir():
        return
    subprocess.run(
        ["npm", "install", "--no-save", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=BULLMQ_DIR,
        check=True,
        timeout=600,
    )


def test_bullmq_job_queue(granary):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm not found: run scripts/test.sh or apt-get install nodejs npm")
    npm_install()
    env = dict(os.environ, GRANARY_PORT=str(granary.port))
    result = subprocess.run(
        ["node", "test.mjs"],
        cwd=BULLMQ_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{granary.log_tail()}"
    assert "bullmq: all jobs processed" in result.stdout
