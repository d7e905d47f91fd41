"""Four ``reconverge explore --shard i/4`` processes on real processes, merged into one
verdicts.json, one JUnit and one report.html by ``reconverge merge`` — what both CI shapes
do, locally.

The four shards run at once, side by side as in CI (each its own containerd world), with a
bug switch on and a small budget each, sharing one Hypothesis example database as the CI
shapes do. Whether a given shard finds the bug inside its few schedules depends on its
draws, which another change to the strategy may move, so the test does not pin which shard
finds it; it pins the plumbing: one row per shard in shard order, only the outcomes a bug
search can end in, a saved schedule (shrunk and original) for every CAUGHT row, and a merged
JUnit, report and exit status that agree with the rows. docs/explore-sharding.md has a
longer run where three of the four shards find and shrink it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

pytestmark = [pytest.mark.needs("containerd", "toxiproxy")]

BIN = Path(sys.executable).parent / "reconverge"
BUG = "runtime.delete_not_retriable"
N = 4
SEED = "1"


def _reconverge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=150, env=dict(os.environ)
    )


def _shard_command(i: int, out: Path, db: Path) -> list[str]:
    return [
        str(BIN), "explore", "--world", "sandbox",
        "--seed", SEED,
        "--shard", f"{i}/{N}",
        "--bug", BUG,
        "--faults", "Shutdown.before",
        "--no-toxics",
        "--max-steps", "5",
        "--max-examples", "6",
        "--minutes", "0.25",
        "--shrink-minutes", "0.1",
        "--out", str(out),
        "--database", str(db),
    ]  # fmt: skip


def test_four_shards_merge_into_one_junit_and_one_verdicts_file(tmp_path: Path) -> None:
    outs = [tmp_path / f"shard-{i}" for i in range(N)]
    # the four shards run at once, as N local workers would (they share only the database)
    procs = [
        subprocess.Popen(
            _shard_command(i, out, tmp_path / "db"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for i, out in enumerate(outs)
    ]
    codes = []
    for i, proc in enumerate(procs):
        try:
            stdout, stderr = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode in (0, 1), stdout + stderr
        assert f"shard {i}/{N}" in stdout, stdout
        codes.append(proc.returncode)

    merged = tmp_path / "merged"
    done = _reconverge("merge", *map(str, outs), "-o", str(merged))
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = json.loads((merged / "verdicts.json").read_text())
    assert [r["case"] for r in rows] == [f"seed {SEED} shard {i}/{N}" for i in range(N)]
    outcomes = [r["outcome"] for r in rows]
    assert set(outcomes) <= {"CAUGHT", "MISSED"}, outcomes
    # each shard's own exit status is its row's: 0 for CAUGHT under a --bug, 1 for MISSED
    assert codes == [0 if o == "CAUGHT" else 1 for o in outcomes], (codes, outcomes)
    for out, outcome in zip(outs, outcomes, strict=True):
        saved = sorted((out / "failures").glob("*.json"))
        if outcome == "CAUGHT":
            [one] = saved
            data = json.loads(one.read_text())
            meta = data["meta"]
            assert meta["steps_after"] <= meta["steps_before"], meta
            assert len(data["original"]["steps"]) == meta["steps_before"], data
        else:
            assert saved == []
    suite = ET.parse(merged / "junit.xml").getroot()
    assert suite.get("tests") == str(N)
    assert suite.get("failures") == str(outcomes.count("MISSED"))
    assert len(suite.findall("testcase")) == N
    assert done.returncode == (0 if "MISSED" not in outcomes else 1)
    # one report for the merged shards: each row with its shard, each saved failure's tables
    page = (merged / "report.html").read_text()
    for out in outs:
        assert f"<td>{out}</td>" in page
    caught = outcomes.count("CAUGHT")
    assert f"{caught} saved failing schedule(s)" in page
    assert page.count('class="steps shrunk"') == caught
    assert page.count('class="steps original"') == caught
    print(f"merged outcomes: {outcomes}")
