"""The explorer on real processes, short: it finds a bug it was not given, shrinks it, the
saved file replays, and one seed draws the same decisions twice.

Real containerd 1.6.20 + the stub shim + toxiproxy (``reconverge explore`` as a user runs
it). The bug is seed c's ``runtime.delete_not_retriable`` with the fault menu narrowed to
``Shutdown.before`` so the smoke stays well inside 2 minutes on a loaded 2-core machine;
the explorer is still not told the schedule (which steps, in which order, how many).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs("containerd", "toxiproxy")]

BIN = Path(sys.executable).parent / "reconverge"
BUG = "runtime.delete_not_retriable"


def _reconverge(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def test_explore_finds_and_shrinks_a_bug_switch(tmp_path: Path):
    out = _reconverge(
        "explore",
        "--seed", "1",
        "--minutes", "1.5",
        "--shrink-minutes", "0.5",
        "--max-steps", "6",
        "--bug", BUG,
        "--faults", "Shutdown.before",
        "--no-toxics",
        "--out", str(tmp_path),
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "CAUGHT" in out.stdout, text
    [saved] = (tmp_path / "failures").glob("*.json")
    data = json.loads(saved.read_text())
    meta = data["meta"]
    assert data["bugs"] == [BUG] and data["expected"] == "DIVERGED"
    assert meta["steps_after"] <= 5 and meta["steps_after"] <= meta["steps_before"], meta
    assert "failed 2 of 2 run(s)" in meta["confirm"] or "failed 2 of 3" in meta["confirm"]
    ops = [s["op"] for s in data["steps"]]
    assert "create" in ops and "shim_fault" in ops, ops
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert [v["outcome"] for v in verdicts] == ["CAUGHT"]
    assert (tmp_path / "junit.xml").read_text().startswith("<testsuite")
    # the decision journal: one record per example, draws with their index
    decisions = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert decisions and all(d["draws"][0][0] == 0 for d in decisions if d["draws"])


def test_explore_check_determinism(tmp_path: Path):
    out = _reconverge(
        "explore",
        "--seed", "3",
        "--max-examples", "3",
        "--max-steps", "4",
        "--faults", "Delete.between",
        "--no-toxics",
        "--check-determinism",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "determinism: identical decision journals (3 decisions" in out.stdout, out.stdout
