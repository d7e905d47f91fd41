"""The journal as a Chrome / Perfetto trace (JSON trace event format).

Why: ui.perfetto.dev and chrome://tracing zoom, search and measure across hundreds of
thousands of events, which no hand-made page does as well. The trace carries the same
picture as the HTML report (:mod:`harness.report.lanes`): one *process* per actor lane
(so each lane is a collapsible track), calls as complete events (``ph: "X"``), everything
else as instant events (``ph: "i"``), fault intervals as complete events on a ``faults``
track, and the first violation as a global instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report.lanes import Picture

FAULT_TRACK = "faults"


def _us(seconds: float) -> float:
    return round(seconds * 1_000_000, 1)


def events(picture: Picture) -> list[dict[str, Any]]:
    """Trace events for ``picture`` (timestamps in µs since the first record)."""
    lanes = list(picture.lanes)
    if FAULT_TRACK not in lanes and picture.faults:
        lanes.append(FAULT_TRACK)
    pid_of = {name: i + 1 for i, name in enumerate(lanes)}
    out: list[dict[str, Any]] = []
    for name, pid in pid_of.items():
        out.append(
            {"ph": "M", "pid": pid, "tid": 0, "name": "process_name", "args": {"name": name}}
        )
        out.append(
            {
                "ph": "M",
                "pid": pid,
                "tid": 0,
                "name": "process_sort_index",
                "args": {"sort_index": pid},
            }
        )
    for item in picture.items:
        rec = picture.record(item.index)
        args: dict[str, Any] = {"T": f"T{item.index}"}
        if rec is not None:
            args.update({k: v for k, v in rec.fields.items() if v not in (None, "")})
            args["proc"] = rec.proc
        ev: dict[str, Any] = {
            "name": item.label,
            "cat": rec.component if rec is not None else "journal",
            "pid": pid_of[item.lane],
            "tid": rec.pid if rec is not None else 0,
            "ts": _us(item.start),
            "args": args,
        }
        if item.end is not None:
            ev.update(ph="X", dur=max(_us(item.end - item.start), 1.0))
            if item.error:
                ev["cname"] = "terrible"
        else:
            ev.update(ph="i", s="t")
        out.append(ev)
    fpid = pid_of.get(FAULT_TRACK)
    for fault in picture.faults:
        ev = {
            "name": fault.label,
            "cat": "fault",
            "pid": fpid,
            "tid": 0,
            "ts": _us(fault.start),
            "args": {"T": f"T{fault.index}", "lane": fault.lane, "open_ended": fault.open_ended},
        }
        if fault.end is not None:
            ev.update(ph="X", dur=max(_us(fault.end - fault.start), 1.0), cname="bad")
        else:
            ev.update(ph="i", s="p")
        out.append(ev)
    v = picture.violation
    if v is not None:
        out.append(
            {
                "name": f"first violation: {v.text}",
                "cat": "violation",
                "ph": "i",
                "s": "g",
                "pid": pid_of.get(v.lane, 1),
                "tid": 0,
                "ts": _us(v.at),
                "args": {"T": f"T{v.index}"},
            }
        )
    return out


def render(picture: Picture, *, metadata: dict[str, Any] | None = None) -> str:
    """The trace as JSON text (object form, so metadata travels with it)."""
    doc = {
        "traceEvents": events(picture),
        "displayTimeUnit": "ms",
        "otherData": {k: str(v) for k, v in (metadata or {}).items()},
    }
    return json.dumps(doc, separators=(",", ":"), default=str)


def write(picture: Picture, path: Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write the trace file and return its path."""
    path.write_text(render(picture, metadata=metadata))
    return path
