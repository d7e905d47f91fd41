"""A journal as swimlanes: one lane per actor, calls as spans, faults as shaded intervals.

Pure: records in, a :class:`Picture` out. The HTML report and the Chrome/Perfetto trace both
draw from the same picture, so the two views cannot disagree about who did what when.

Why these lanes: a seed bug is an interleaving between actors — the reconciler's calls, a
shim's ttrpc methods, containerd's events, the API server's watch, the kubelet — and the
fault that opened the window. One lane per actor shows the interleaving; the fault's
interval shaded across every lane shows what overlapped it.

Lanes: a shim daemon's records (proc ``shim:<id>``) are that shim's lane; everything else
is laned by component (:data:`LANE_OF_COMPONENT`, else the component's own name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.journal.record import Record

#: Component -> lane. Components not listed get a lane of their own name.
LANE_OF_COMPONENT: dict[str, str] = {
    "reconciler": "reconciler",
    "claims": "reconciler",
    "claims.store": "reconciler",
    "client": "containerd API",
    "cri": "containerd API",
    "ctr": "containerd API",
    "kube": "kube-apiserver",
    "kwok": "kube-apiserver",
    "kubelet": "kubelet",
    "check": "checks",
    "leaks": "checks",
    "verdict": "checks",
    "teardown": "checks",
    "failpoint": "faults",
    "toxiproxy": "toxiproxy",
}

#: Reconciler events that are containerd's event stream arriving, not reconciler work.
CONTAINERD_EVENTS = frozenset({"event_in", "event_stream_ready", "event_stream_lost"})

#: Preferred top-to-bottom order; lanes not named here follow in order of first record.
LANE_ORDER = (
    "reconciler",
    "containerd API",
    "containerd events",
    "shim:*",
    "containerd",
    "API-server watch",
    "kube-apiserver",
    "kubelet",
    "toxiproxy",
    "faults",
    "checks",
)

#: Verdict outcomes that are not a violation (a plumbing pass, a fixed case converging).
QUIET_OUTCOMES = frozenset({"PASSED", "CONVERGED", "SKIPPED"})


def lane_of(rec: Record) -> str:
    """The actor lane a record belongs to."""
    if rec.proc.startswith("shim:"):
        return rec.proc
    if rec.component == "reconciler" and rec.event in CONTAINERD_EVENTS:
        return "containerd events"
    if rec.component.endswith(".watch"):
        return "API-server watch"
    return LANE_OF_COMPONENT.get(rec.component, rec.component)


@dataclass(frozen=True)
class Item:
    """Something drawn in a lane: a span (``end`` set) or an instant (``end`` is None).

    Times are seconds since the picture's ``t0``; ``index`` is the T-number of the record
    that produced it (the row of the T1…Tn table it links to).
    """

    lane: str
    start: float
    end: float | None
    label: str
    index: int
    detail: str = ""
    error: bool = False

    @property
    def is_span(self) -> bool:
        return self.end is not None


@dataclass(frozen=True)
class Fault:
    """A fault interval (a toxic's life, a held call, a restart) or instant (a trigger)."""

    start: float
    end: float | None
    label: str
    index: int
    lane: str  # the lane where it acted (the shim, toxiproxy, …)
    open_ended: bool = False  # still active when the journal ends


@dataclass(frozen=True)
class Violation:
    """Where the first thing went wrong: a failing check, a leak, a non-quiet verdict."""

    at: float
    index: int
    lane: str
    text: str


@dataclass
class Picture:
    """Everything the report draws."""

    t0: float
    duration: float
    lanes: list[str]
    items: list[Item]
    faults: list[Fault]
    violation: Violation | None
    records: list[Record] = field(default_factory=list)
    #: the T-number of ``records[0]`` (> 1 when the picture is a window of a longer journal)
    first: int = 1

    def lane_items(self, lane: str) -> list[Item]:
        return [i for i in self.items if i.lane == lane]

    def record(self, index: int) -> Record | None:
        """The record with T-number ``index`` (None outside the picture)."""
        i = index - self.first
        return self.records[i] if 0 <= i < len(self.records) else None


def _brief(fields: dict[str, Any], skip: frozenset[str] = frozenset({"stream_id"})) -> str:
    parts = [f"{k}={v}" for k, v in fields.items() if k not in skip and v not in (None, "")]
    text = " ".join(parts)
    return text if len(text) <= 300 else text[:299] + "…"


def _ms(rec: Record) -> float | None:
    value = rec.fields.get("ms")
    return float(value) / 1000.0 if isinstance(value, (int, float)) else None


def _order(lanes: list[str]) -> list[str]:
    """Sort lanes by :data:`LANE_ORDER`; ``shim:*`` stands for every shim lane."""

    def rank(name: str) -> int:
        key = "shim:*" if name.startswith("shim:") else name
        return LANE_ORDER.index(key) if key in LANE_ORDER else len(LANE_ORDER)

    first_seen = {name: i for i, name in enumerate(lanes)}
    return sorted(lanes, key=lambda n: (rank(n), first_seen[n]))


def violation_of(rec: Record) -> str | None:
    """The text of a violation when ``rec`` is one, else None."""
    f = rec.fields
    if rec.component in ("check", "leaks"):
        if rec.component == "leaks" and rec.event == "leak":
            return f"leak: {f.get('kind', '')} {f.get('id', '')}".strip()
        if rec.event == "not_converged":
            return f"not converged: {f.get('what', '')}".strip()
        if f.get("ok") is False and f.get("observed", True) is not False:
            return f"{rec.event}: {f.get('symptom', 'not ok')}"
        for sub in f.get("findings") or []:  # a checker journaling several findings at once
            if isinstance(sub, dict) and sub.get("ok") is False and sub.get("observed", True):
                return f"{sub.get('check', rec.event)}: {sub.get('symptom', 'not ok')}"
    if rec.component == "verdict" and rec.event not in QUIET_OUTCOMES:
        return f"verdict {rec.event}: {f.get('symptom', '')}"
    if rec.component == "explore":  # an explore run judges itself (a saved failure's run)
        if rec.event == "violation":
            return f"{f.get('check', 'violation')}: {f.get('symptom', '')}"
        if rec.event == "judged" and str(f.get("outcome")) not in QUIET_OUTCOMES:
            return f"judged {f.get('outcome')}: {f.get('symptom', '')}"
    return None


def build(records: Sequence[Record], *, start: float | None = None, first: int = 1) -> Picture:
    """Lanes, spans, fault intervals and the first violation of ``records`` (mono-ordered).

    ``first`` is the T-number of ``records[0]``: a window of a longer journal keeps the
    journal's numbering, so its rows still match ``reconverge timeline``.
    """
    recs = list(records)
    if not recs:
        return Picture(0.0, 0.0, [], [], [], None, [], first)
    t0 = recs[0].mono if start is None else start
    end_t = max(r.mono for r in recs) - t0
    items: list[Item] = []
    faults: list[Fault] = []
    seen: list[str] = []
    violation: Violation | None = None
    # shim requests waiting for their reply: (pid, stream_id, method) -> (start, index)
    calls: dict[tuple[int, Any, Any], tuple[float, int]] = {}
    # fault intervals still open: key -> (start, index, label, lane)
    open_faults: dict[tuple[Any, ...], tuple[float, int, str, str]] = {}
    # held shim calls (a delay/hang fault) close with that call's reply
    held: dict[tuple[int, Any], tuple[float, int, str]] = {}

    def close_fault(key: tuple[Any, ...], at: float) -> None:
        s, idx, label, lane = open_faults.pop(key)
        faults.append(Fault(s, at, label, idx, lane))

    for n, rec in enumerate(recs, first):
        t = rec.mono - t0
        lane = lane_of(rec)
        if lane not in seen:
            seen.append(lane)
        f = rec.fields
        detail = _brief(f)
        c, e = rec.component, rec.event
        # -- faults -----------------------------------------------------------------------
        if c == "failpoint" and e == "trigger" and f.get("action") != "off":
            where = rec.proc if rec.proc.startswith("shim:") else "faults"
            label = f"{f.get('name')}: {f.get('action')}" + (
                f"({f.get('arg')})" if f.get("arg") not in (None, "") else ""
            )
            faults.append(Fault(t, None, label, n, where))
        elif c == "shim" and e == "fault" and f.get("action") in ("delay", "hang"):
            held[(rec.pid, f.get("stream_id"))] = (t, n, f"{f.get('point')}: {f.get('action')}")
        elif c == "toxiproxy" and e == "toxic_added":
            kind, stream = f.get("toxic"), f.get("stream", "downstream")
            key = ("toxic", f.get("proxy"), f.get("name") or f"{kind}_{stream}")
            attrs = _brief({k: v for k, v in f.items() if k not in ("proxy", "toxic", "stream")})
            label = f"toxic {kind} {stream} on {f.get('proxy')}" + (f" ({attrs})" if attrs else "")
            open_faults[key] = (t, n, label, "toxiproxy")
        elif c == "toxiproxy" and e == "toxic_removed":
            key = ("toxic", f.get("proxy"), f.get("toxic"))
            if key not in open_faults:  # named differently: close the oldest on that proxy
                key = next((k for k in open_faults if k[:2] == key[:2]), key)
            if key in open_faults:
                close_fault(key, t)
        elif c == "toxiproxy" and e in ("proxy_deleted",) and f.get("proxy"):
            for key in [k for k in open_faults if k[1] == f.get("proxy")]:
                close_fault(key, t)
        elif c == "toxiproxy" and e == "down" and f.get("proxy"):
            open_faults[("down", f.get("proxy"), "")] = (
                t,
                n,
                f"proxy {f.get('proxy')} down",
                "toxiproxy",
            )
        elif c == "toxiproxy" and e == "up" and ("down", f.get("proxy"), "") in open_faults:
            close_fault(("down", f.get("proxy"), ""), t)
        elif e in ("restarting", "apiserver_restart"):
            open_faults[("restart", c)] = (t, n, f"{c} {e}", lane)
        elif e in ("ready", "apiserver_ready_again") and ("restart", c) in open_faults:
            close_fault(("restart", c), t)
        elif e == "crashed":
            faults.append(Fault(t, None, f"{c} crashed", n, lane))
        # -- lane items -------------------------------------------------------------------
        if c == "shim" and e == "request":
            calls[(rec.pid, f.get("stream_id"), f.get("method"))] = (t, n)
            continue  # drawn as a span when its reply arrives (or open at the end)
        if c == "shim" and e == "reply":
            begun = calls.pop((rec.pid, f.get("stream_id"), f.get("method")), None)
            s, idx = begun if begun else (t - (_ms(rec) or 0.0), n)
            outcome = str(f.get("outcome", "ok"))
            items.append(Item(lane, s, t, str(f.get("method")), idx, detail, error=outcome != "ok"))
            hold = held.pop((rec.pid, f.get("stream_id")), None)
            if hold is not None:
                faults.append(Fault(hold[0], t, hold[2], hold[1], lane))
        elif _ms(rec) is not None and c in ("client", "cri"):
            outcome = str(f.get("outcome", "OK"))
            items.append(Item(lane, t - (_ms(rec) or 0.0), t, e, n, detail, error=outcome != "OK"))
        else:
            items.append(Item(lane, t, None, e, n, detail))
        if violation is None:
            text = violation_of(rec)
            if text:
                violation = Violation(t, n, lane, text)
    # what never ended is drawn to the end of the journal
    proc_of = {r.pid: r.proc for r in recs if r.component == "shim"}
    for (pid, _sid, method), (s, idx) in calls.items():
        lane = proc_of.get(pid, "shim")
        items.append(Item(lane, s, end_t, f"{method} (no reply)", idx, "", error=True))
    for s, idx, label in held.values():
        faults.append(Fault(s, end_t, label, idx, "faults", open_ended=True))
    for key in list(open_faults):
        s, idx, label, lane = open_faults.pop(key)
        faults.append(Fault(s, end_t, label, idx, lane, open_ended=True))
    faults.sort(key=lambda x: (x.start, x.index))
    items.sort(key=lambda x: (x.start, x.index))
    lanes = _order(seen)
    return Picture(t0, end_t, lanes, items, faults, violation, recs, first)
