"""The claims world on real processes, short: the explorer finds a claim-operator bug it was
not given, shrinks it, and a saved claims file replays through ``reconverge repro``.

Real etcd + kube-apiserver + toxiproxy + the reference claim operator (``reconverge explore
--world claims`` as a user runs it). The bug is seed d's ``lost_keeps_podname`` (PR #592
bug 3) with the fault menu narrowed to one harmless entry (duplicated pod events) and no
toxics, so the smoke stays within a minute on a loaded 2-core machine; the explorer is
still not told the schedule (which claims, which pods, in which order). Seed 9 draws a
schedule with the bug's trigger early (seed 1 needs more than the half minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs("toxiproxy", "etcd", "kube-apiserver")]

BIN = Path(sys.executable).parent / "reconverge"
BUG = "lost_keeps_podname"
REPO = Path(__file__).resolve().parents[3]
SAVED = REPO / "suites" / "regressions" / "claims"


def _reconverge(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def test_explore_claims_finds_and_shrinks_a_bug_switch(tmp_path: Path):
    t0 = time.monotonic()
    out = _reconverge(
        "explore",
        "--world", "claims",
        "--seed", "9",
        "--minutes", "0.5",
        "--shrink-minutes", "0.3",
        "--max-steps", "3",
        "--bug", BUG,
        "--faults", "intake.pods.duplicate",
        "--no-toxics",
        "--out", str(tmp_path),
    )  # fmt: skip
    took = time.monotonic() - t0
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "explore: CAUGHT" in out.stdout, text
    [saved] = (tmp_path / "failures").glob("*.json")
    data = json.loads(saved.read_text())
    meta = data["meta"]
    assert data["world"] == "claims" and data["bugs"] == [BUG], data
    assert meta["check"] == "convergence: lost claims released", meta
    assert meta["steps_after"] <= 3 and meta["steps_after"] <= meta["steps_before"], meta
    ops = [s["op"] for s in data["steps"]]
    assert "create_claim" in ops and "delete_pod" in ops, ops
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert [v["outcome"] for v in verdicts] == ["CAUGHT"]
    assert verdicts[0]["suite"] == "explore-claims"
    assert took < 90, f"the smoke took {took:.0f}s:\n{text}"


def test_repro_replays_a_saved_claims_schedule():
    files = sorted(SAVED.glob(f"{BUG.replace('_', '-')}*.json"))
    assert files, f"no saved {BUG} case under {SAVED}"
    out = _reconverge("repro", str(files[0]))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "reproduced 5/5" in out.stdout, text
    assert "replay 5/5: DIVERGED" in out.stdout, text
