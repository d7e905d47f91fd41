"""A saved failure keeps the journal of its failing run, and its report draws it.

Real containerd 1.6.20 + the stub shim + toxiproxy, ``reconverge explore`` as a user runs
it, kept short: ``--shrink`` of a 4-step schedule the search found for the bug switch the
smoke test uses (``runtime.delete_not_retriable``; the search itself is the smoke's), so the
run is confirmation, the fixed-reconciler controls and step deletions — a dozen schedules,
each in a namespace of its own, all journaled into the world's one run journal. What is
saved is cut down to the one run the shrunk schedule failed in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.journal import merge

pytestmark = [pytest.mark.needs("containerd", "toxiproxy")]

BIN = Path(sys.executable).parent / "reconverge"
BUG = "runtime.delete_not_retriable"
#: what ``explore --seed 1 --bug BUG --faults Shutdown.before --no-toxics`` first found
FOUND = {
    "schema": 1,
    "world": "sandbox",
    "bugs": [BUG],
    "steps": [
        {
            "op": "shim_fault",
            "sandbox": "sb0",
            "method": "Shutdown",
            "phase": "before",
            "action": "error",
            "arg": "please retry",
            "nth": 1,
        },
        {"op": "create", "sandbox": "sb0"},
        {"op": "create", "sandbox": "sb0"},
        {"op": "kill_task", "sandbox": "sb0"},
    ],
    "expected": "DIVERGED",
    "symptom": "teardown leaks: shim-process of sb0: daemon alive",
    "meta": {"seed": 1},
}


def _reconverge(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def test_a_saved_failure_has_its_run_journal_and_the_report_draws_it(tmp_path: Path):
    given = tmp_path / "found.json"
    given.write_text(json.dumps(FOUND))
    out = _reconverge(
        "explore",
        "--shrink", str(given),
        "--seed", "1",
        "--shrink-minutes", "1",
        "--bug", BUG,
        "--faults", "Shutdown.before",
        "--no-toxics",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "CAUGHT" in out.stdout, text
    [saved] = (tmp_path / "out" / "failures").glob("*.json")
    kept = saved.with_name(saved.stem + ".journal.jsonl")
    assert kept.is_file(), text
    records = merge.parse(kept.read_text())
    assert records, f"{kept} is empty"
    # one schedule's run: one schedule record, one judgement, and one namespace throughout
    marks = [r for r in records if r.component == "explore" and r.event == "schedule"]
    assert len(marks) == 1, [r.fields for r in marks]
    ns = marks[0].fields["namespace"]
    named = {r.fields["namespace"] for r in records if r.fields.get("namespace")}
    assert named == {ns}, named
    judged = [r for r in records if r.component == "explore" and r.event == "judged"]
    assert [r.fields["outcome"] for r in judged] == ["DIVERGED"], [r.fields for r in judged]
    assert any(r.proc.startswith("shim:") for r in records)  # the shims' side is in it too
    assert f"journal of the failing run: {kept} ({len(records)} records)" in out.stdout, text
    assert len(json.loads(saved.read_text())["steps"]) < len(FOUND["steps"]), text  # shrunk

    page_path = tmp_path / "saved.html"
    rep = _reconverge("report", str(saved), "-o", str(page_path), timeout=60)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert f"journal: {len(records)} record(s) of the failing run drawn" in rep.stdout
    page = page_path.read_text()
    drawn = page[page.index('class="saved-journal"') :]
    assert 'id="lanes-svg"' in drawn and 'title="reconciler"' in drawn
    assert f'<tr id="T{len(records)}"' in drawn
