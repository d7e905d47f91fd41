"""Journal records from several processes merge into one ordered history."""

from __future__ import annotations

import subprocess
import sys

from harness import journal
from harness.journal import merge
from harness.journal.record import Record


def test_records_from_two_processes_merge_in_monotonic_order(tmp_path):
    j = journal.Journal(tmp_path, "parent")
    j.emit("test", "before")
    code = (
        "import sys, pathlib; from harness import journal; "
        "journal.Journal(pathlib.Path(sys.argv[1]), 'child').emit('test', 'middle', n=1)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    j.emit("test", "after")
    j.close()
    recs = merge.load(tmp_path)
    assert [r.event for r in recs] == ["before", "middle", "after"]
    assert {r.proc for r in recs} == {"parent", "child"}
    assert recs[1].fields == {"n": 1}


def test_torn_last_line_is_skipped(tmp_path):
    j = journal.Journal(tmp_path, "p")
    j.emit("c", "whole")
    j.close()
    with open(j.path, "a") as f:
        f.write('{"mono": 1.0, "wall": 2')
    recs = merge.load(tmp_path)
    assert [r.event for r in recs] == ["whole"]


def test_record_round_trip():
    r = Record(1.5, 2.5, 7, "proc", "comp", "ev", {"a": [1, 2], "b": "x"})
    assert Record.from_json(r.to_json()) == r


def test_since_filters_by_start(tmp_path):
    j = journal.Journal(tmp_path, "p")
    first = j.emit("c", "old")
    j.emit("c", "new")
    j.close()
    recs = merge.since(merge.load(tmp_path), first.mono + 1e-9)
    assert [r.event for r in recs] == ["new"]


def test_disabled_journal_writes_nothing(tmp_path):
    j = journal.Journal(None, "p")
    rec = j.emit("c", "e", x=1)
    assert not j.enabled and rec.event == "e"
    assert not list(tmp_path.iterdir())
