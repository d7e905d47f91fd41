"""The journal of one run, cut from the world's run journal, and saved next to a failure.

Why: a saved schedule says what was done, not what happened; the suites' failure bundles
draw the journal as swimlanes, and a failing schedule deserves the same. Every run of an
explore process journals into the one run directory of its world (``harness.run``), which
holds every schedule's records and is removed when the world stops — so the engine cuts the
failing run's records out while the world is still up.

Attribution, world-neutral: schedules run one at a time, so a run's records are those
between the start and the end of its ``runner(schedule, label)`` call (the engine notes
that window on the :class:`~harness.explore.result.Result`). Within that window a record
that names another namespace is dropped, and so is every record of a daemon that serves
another namespace (a shim, ``proc`` ``shim:<id>``, names its namespace once when it starts
serving — possibly before the window; ids repeat between schedules, and a previous
schedule's shim may still be exiting).

The file is ``<saved stem>.journal.jsonl`` (the journal's own line format), so
``reconverge report`` draws it next to the schedule and ``reconverge timeline`` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.journal import merge
from harness.journal.record import Record

SUFFIX = ".journal.jsonl"


def path_for(saved: Path) -> Path:
    """Where the journal of saved schedule ``saved`` (``<name>.json``) lives."""
    return saved.with_name(saved.stem + SUFFIX)


def _owners(records: Sequence[Record]) -> dict[int, str]:
    """Daemon pid -> the one namespace it serves (from any of its records naming one)."""
    owners: dict[int, str] = {}
    for r in records:
        ns = r.fields.get("namespace")
        if r.proc.startswith("shim:") and isinstance(ns, str) and ns:
            owners.setdefault(r.pid, ns)
    return owners


def attribute(records: Sequence[Record], start: float, end: float, namespace: str) -> list[Record]:
    """The records of the run between ``start`` and ``end`` (monotonic) in ``namespace``
    (every record of the window when the run had no namespace)."""
    owners = _owners(records) if namespace else {}
    out = []
    for r in records:
        if not start <= r.mono <= end:
            continue
        if namespace:
            named = r.fields.get("namespace")
            if isinstance(named, str) and named and named != namespace:
                continue
            if owners.get(r.pid, namespace) != namespace:
                continue
        out.append(r)
    return out


def cut(run_dir: Path | None, window: tuple[float, float] | None, namespace: str) -> list[Record]:
    """The run's records from ``run_dir``'s journal ([] without a run dir or a window)."""
    if run_dir is None or window is None:
        return []
    return attribute(merge.load(run_dir), window[0], window[1], namespace)


def write(path: Path, records: Sequence[Record]) -> Path:
    """Write ``records`` as JSON lines (the format ``harness.journal.merge`` parses)."""
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


def read(saved: Path) -> list[Record]:
    """The journal saved next to ``saved`` ([] when there is none: older files, merges of
    shards that did not keep one)."""
    path = path_for(saved)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return sorted(merge.parse(text), key=lambda r: (r.mono, r.wall, r.pid))
