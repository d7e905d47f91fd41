"""A fixed case with its fix disabled by hand fails loudly, and its repro line reproduces it.

The fix is disabled through ``RECONVERGE_SANDBOX_BUGS`` (what editing the reconciler would
do); the case must print the T1…Tn timeline, write it as an artifact, print a repro
command, and that command must give the same verdict.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("containerd", "toxiproxy")

ROOT = Path(__file__).resolve().parents[3]
CASE = "suites/test_seed_c_shutdown.py::test_shutdown_error_after_delete[fixed]"


def _run(cmd: list[str], artifacts: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RECONVERGE_SANDBOX_BUGS="runtime.delete_not_retriable")
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_disabled_fix_prints_timeline_and_a_repro_that_reproduces(tmp_path):
    art = tmp_path / "art"
    first = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            CASE,
            "-p",
            "no:cacheprovider",
            f"--reconverge-artifacts={art}",
        ],
        art,
    )
    out = first.stdout + first.stderr
    assert first.returncode == 1, out[-3000:]
    assert "DIVERGED" in out and "leaked shim: shim alive" in out, out[-3000:]
    assert re.search(r"^T\d+ ", out, re.M), "no T1..Tn timeline printed"
    assert "shim.Shutdown.before" in out  # the fault that fired is in the timeline
    assert list(art.rglob("timeline.txt")), f"no timeline artifact under {art}"
    m = re.search(r"replay: .*?(\S*reconverge) repro '([^']+)'", out)
    assert m, out[-2000:]
    again = _run([str(ROOT / ".venv/bin/reconverge"), "repro", m.group(2)], art)
    out2 = again.stdout + again.stderr
    assert again.returncode == 1, out2[-3000:]
    assert "DIVERGED" in out2 and "leaked shim: shim alive" in out2, out2[-3000:]
