"""Render a journal as the T1…Tn timeline the seed bug reports use.

Pure: records in, text out. The same renderer feeds the terminal, the pytest report
section and the artifact file, so what a failure prints is what the bundle holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from harness.journal.record import Record

_HIDDEN_FIELDS = frozenset({"stream_id"})


def _detail(rec: Record, width: int) -> str:
    parts = []
    for key, value in rec.fields.items():
        if key in _HIDDEN_FIELDS or value is None or value == "":
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"), default=str)
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def rows(
    records: Sequence[Record], *, start: float | None = None, first: int = 1
) -> list[tuple[str, ...]]:
    """Table rows (T-number, +ms, who, event, detail) for ``records``; ``first`` numbers
    the first row (a window of a longer journal keeps the journal's T-numbers)."""
    if not records:
        return []
    t0 = records[0].mono if start is None else start
    out = []
    for i, rec in enumerate(records, first):
        who = rec.proc if rec.component in rec.proc else f"{rec.proc}/{rec.component}"
        out.append(
            (
                f"T{i}",
                f"+{(rec.mono - t0) * 1000:.0f}ms",
                who,
                rec.event,
                _detail(rec, 200),
            )
        )
    return out


def render(
    records: Iterable[Record],
    *,
    tail: int | None = None,
    title: str | None = None,
    components: set[str] | None = None,
) -> str:
    """Draw the timeline; ``tail`` keeps the last N rows but keeps T-numbers absolute."""
    recs = [r for r in records if components is None or r.component in components]
    table = rows(recs)
    if tail is not None and len(table) > tail:
        skipped = len(table) - tail
        table = table[-tail:]
        head = [f"… {skipped} earlier records omitted"]
    else:
        head = []
    if not table:
        return (title + "\n" if title else "") + "(journal is empty)"
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    widths = [max(w, len(h)) for w, h in zip(widths, ("T", "time", "who", "event"), strict=True)]
    header = "  ".join(
        h.ljust(w) for h, w in zip(("T", "time", "who", "event"), widths, strict=True)
    )
    lines = [title] if title else []
    lines += head
    lines.append(header + "  detail")
    lines.append("-" * (len(header) + 8))
    for r in table:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        )
    return "\n".join(lines)
