"""Merging the per-process journals of a run into one ordered history."""

from __future__ import annotations

from pathlib import Path

from harness.journal.record import Record


def parse(text: str) -> list[Record]:
    """Records of one JSON-lines text, in file order; a torn or foreign line is skipped."""
    out: list[Record] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(Record.from_json(line))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def load(run_dir: Path | str) -> list[Record]:
    """Every record of a run, ordered by the shared monotonic clock.

    A torn last line (a process killed mid-write) is skipped, not fatal: the journal is
    evidence, and partial evidence beats none.
    """
    records: list[Record] = []
    jdir = Path(run_dir) / "journal"
    if not jdir.is_dir():
        return records
    for path in sorted(jdir.glob("*.jsonl")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        records.extend(parse(text))
    records.sort(key=lambda r: (r.mono, r.wall, r.pid))
    return records


def since(records: list[Record], mono: float) -> list[Record]:
    """Records at or after a monotonic instant (e.g. the start of one test)."""
    return [r for r in records if r.mono >= mono]


def find(
    run_dir: Path | str, *, after: float, component: str, event: str, **fields: object
) -> list[Record]:
    """Records of one kind since an instant whose fields match (what a case waits on)."""
    return [
        r
        for r in since(load(run_dir), after)
        if r.component == component
        and r.event == event
        and all(r.fields.get(k) == v for k, v in fields.items())
    ]
