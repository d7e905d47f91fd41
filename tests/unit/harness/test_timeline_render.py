"""The T1…Tn timeline renderer."""

from __future__ import annotations

from harness.journal.record import Record
from harness.report import timeline


def _rec(t: float, event: str, **fields) -> Record:
    return Record(t, 1000 + t, 1, "pytest", "shim", event, fields)


def test_rows_are_numbered_with_relative_time():
    out = timeline.render([_rec(10.0, "Delete", id="sb1"), _rec(10.25, "Shutdown", id="sb1")])
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["T", "time", "who", "event"]
    assert "T1" in lines[2] and "+0ms" in lines[2] and "Delete" in lines[2] and "id=sb1" in lines[2]
    assert "T2" in lines[3] and "+250ms" in lines[3]


def test_tail_keeps_absolute_numbers():
    recs = [_rec(float(i), f"e{i}") for i in range(10)]
    out = timeline.render(recs, tail=3)
    assert "7 earlier records omitted" in out
    assert "T8" in out and "T10" in out and "T7 " not in out


def test_empty_journal_says_so():
    assert "(journal is empty)" in timeline.render([])


def test_long_details_are_truncated():
    out = timeline.render([_rec(0.0, "x", blob="z" * 500)])
    assert "…" in out and "z" * 250 not in out
