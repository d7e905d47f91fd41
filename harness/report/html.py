"""The single-file HTML report: verdict header, swimlanes, findings, fire counts, T1…Tn.

Why one self-contained file: a CI artifact is opened from a zip on a laptop, often offline;
inline CSS and JS (no CDN, no fetch) means it opens anywhere, and a bundle stays one
directory that can be attached to an issue. The swimlanes are SVG drawn here in Python from
:mod:`harness.report.lanes` (so the page shows without running any script); the small
script only zooms, filters the table and jumps to the first violation.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.journal.record import Record
from harness.report import matrix_view, schedule_view, timeline
from harness.report.lanes import Picture, lane_of, violation_of

LANE_H = 26
AXIS_H = 22
LABEL_W = 170
MIN_W = 1100
MAX_W = 30000
#: room right of the last record for the first-violation label
RIGHT_PAD = 160

_COLORS = {
    "reconciler": "#59a14f",
    "containerd API": "#f28e2b",
    "containerd events": "#b07aa1",
    "API-server watch": "#edc948",
    "kube-apiserver": "#e8b500",
    "kubelet": "#76b7b2",
    "checks": "#9c755f",
    "toxiproxy": "#ff9da7",
    "faults": "#e15759",
}
_SHIM_COLOR = "#4e79a7"
_OTHER_COLOR = "#8c8c8c"
_GOOD = frozenset({"PASSED", "CONVERGED", "CAUGHT"})


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _color(lane: str) -> str:
    if lane.startswith("shim:"):
        return _SHIM_COLOR
    return _COLORS.get(lane, _OTHER_COLOR)


@dataclass
class Context:
    """What the header and the tables show besides the journal itself."""

    title: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``reconverge run --repeat``: case key -> the outcome of each repeat (in order)
    repeats: dict[str, list[str | None]] = field(default_factory=dict)
    #: links shown under the header (label -> relative href), e.g. each repeat's report
    links: dict[str, str] = field(default_factory=dict)
    #: a containerd version-matrix run: the release x case view (``matrix_view``)
    matrix: matrix_view.MatrixView | None = None
    #: explorer output: merged shard rows and saved schedules (``schedule_view``)
    explore: schedule_view.ExploreView | None = None


def _scale(picture: Picture) -> float:
    """Pixels per second: the whole journal fits MIN_W px (the first look is the overview;
    zoom and the jump to the first violation give detail)."""
    return MIN_W / max(picture.duration, 1e-3)


def _tick_step(span_s: float) -> float:
    """A 1/2/5 step giving 6-12 ticks across ``span_s`` seconds."""
    raw = span_s / 10 if span_s > 0 else 0.001
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _fmt_t(seconds: float) -> str:
    return f"+{seconds * 1000:.0f}ms" if seconds < 2 else f"+{seconds:.2f}s"


def swimlanes(picture: Picture, prefix: str = "") -> str:
    """The lane labels and the SVG of lanes, faults and the first violation.

    ``prefix`` goes before every element id and row link, so a page can hold several
    (a merge's saved failures); the page script zooms the unprefixed one."""
    px = _scale(picture)
    width = int(picture.duration * px) + RIGHT_PAD
    lanes = picture.lanes
    row = {name: i for i, name in enumerate(lanes)}
    height = AXIS_H + LANE_H * len(lanes) + 4
    out: list[str] = []
    out.append(
        f'<svg id="{prefix}lanes-svg" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" data-px="{px:.3f}" data-duration="{picture.duration:.6f}" '
        f'data-pad="{RIGHT_PAD}">'
    )
    for i, _name in enumerate(lanes):
        y = AXIS_H + i * LANE_H
        fill = "#f7f7f7" if i % 2 else "#ffffff"
        out.append(
            f'<rect class="lane-bg" x="0" y="{y}" width="{width}" height="{LANE_H}" '
            f'fill="{fill}" data-w="1"/>'
        )
    step = _tick_step(picture.duration)
    t = 0.0
    while t <= picture.duration + 1e-9:
        x = 10 + t * px
        out.append(
            f'<g class="tick" data-t="{t:.6f}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_H - 6}" '
            f'y2="{height}" stroke="#e3e3e3"/><text x="{x + 2:.1f}" y="12" '
            f'class="tick-label">{_e(_fmt_t(t))}</text></g>'
        )
        t += step
    for f in picture.faults:
        x = 10 + f.start * px
        tip = _e(
            f"T{f.index} {_fmt_t(f.start)} fault: {f.label}"
            + (" (until the end)" if f.open_ended else "")
        )
        if f.end is not None:
            w = max((f.end - f.start) * px, 3)
            out.append(
                f'<a href="#{prefix}T{f.index}"><rect class="fault" x="{x:.1f}" y="{AXIS_H}" '
                f'width="{w:.1f}" height="{height - AXIS_H}" data-t="{f.start:.6f}" '
                f'data-e="{f.end:.6f}"><title>{tip}</title></rect></a>'
            )
        else:
            out.append(
                f'<a href="#{prefix}T{f.index}"><g class="fault-mark" data-t="{f.start:.6f}">'
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_H}" y2="{height}"/>'
                f'<path d="M{x - 5:.1f},{AXIS_H - 6} L{x + 5:.1f},{AXIS_H - 6} '
                f'L{x:.1f},{AXIS_H + 2} Z"/>'
                f"<title>{tip}</title></g></a>"
            )
    for item in picture.items:
        y = AXIS_H + row[item.lane] * LANE_H
        x = 10 + item.start * px
        rec = picture.record(item.index)
        who = rec.proc if rec is not None else item.lane
        tip = _e(f"T{item.index} {_fmt_t(item.start)} {who}: {item.label} {item.detail}".strip())
        color = _color(item.lane)
        cls = "item err" if item.error else "item"
        if item.end is not None:
            w = max((item.end - item.start) * px, 2)
            show = "" if w >= 7 * len(item.label) else ' style="display:none"'
            out.append(
                f'<a href="#{prefix}T{item.index}" class="{cls}"><rect class="span" x="{x:.1f}" '
                f'y="{y + 5}" width="{w:.1f}" height="{LANE_H - 10}" rx="2" fill="{color}" '
                f'data-t="{item.start:.6f}" data-e="{item.end:.6f}"><title>{tip}</title></rect>'
                f'<text class="span-label" x="{x + 3:.1f}" y="{y + LANE_H / 2 + 4}" '
                f'data-t="{item.start:.6f}" data-e="{item.end:.6f}" data-len="{len(item.label)}"'
                f"{show}>{_e(item.label)}</text></a>"
            )
        else:
            out.append(
                f'<a href="#{prefix}T{item.index}" class="{cls}"><circle class="dot" cx="{x:.1f}" '
                f'cy="{y + LANE_H / 2}" r="4" fill="{color}" data-t="{item.start:.6f}">'
                f"<title>{tip}</title></circle></a>"
            )
    v = picture.violation
    if v is not None:
        x = 10 + v.at * px
        out.append(
            f'<g id="{prefix}first-violation" class="violation" data-t="{v.at:.6f}" '
            f'data-index="{v.index}">'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}"/>'
            f'<text x="{x + 4:.1f}" y="{AXIS_H - 8}">first violation T{v.index}</text>'
            f"<title>{_e(f'T{v.index} {_fmt_t(v.at)}: {v.text}')}</title></g>"
        )
    out.append("</svg>")
    labels = "".join(
        f'<div class="lane-label" style="height:{LANE_H}px" title="{_e(name)}">'
        f'<span class="swatch" style="background:{_color(name)}"></span>{_e(name)}</div>'
        for name in lanes
    )
    return (
        f'<div class="lanes" id="{prefix}lanes"><div class="lane-labels" '
        f'style="padding-top:{AXIS_H}px">{labels}</div>'
        f'<div class="lane-scroll" id="{prefix}lane-scroll">{"".join(out)}</div></div>'
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    if not rows:
        return '<p class="none">none</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _badge(outcome: str) -> str:
    kind = "good" if outcome in _GOOD else "skip" if outcome == "SKIPPED" else "bad"
    return f'<span class="badge {kind}">{_e(outcome)}</span>'


def _fired_text(fired: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fired.items()) if fired else "-"


def _header(ctx: Context, picture: Picture) -> str:
    meta = ctx.meta
    parts = [f"<h1>{_e(ctx.title)}</h1>"]
    if ctx.verdicts:
        parts.append('<div class="verdicts">')
        for v in ctx.verdicts:
            name = " ".join(
                str(x) for x in (v.get("suite"), v.get("case"), f"[{v.get('variant')}]") if x
            )
            parts.append(
                f'<div class="verdict">{_badge(str(v.get("outcome", "?")))} '
                f'<b>{_e(name)}</b> <span class="symptom">{_e(v.get("symptom", ""))}</span></div>'
            )
        parts.append("</div>")
    facts: list[tuple[str, object]] = []
    if meta.get("seed") is not None:
        facts.append(("seed", meta["seed"]))
    if meta.get("case_seed") is not None:
        facts.append(("case seed", meta["case_seed"]))
    if meta.get("nodeid"):
        facts.append(("node id", meta["nodeid"]))
    journal = bool(picture.records) or ctx.explore is None
    if journal:
        facts.append(("records", len(picture.records)))
    if picture.first > 1:
        facts.append(("shown", f"T{picture.first}…T{picture.first + len(picture.records) - 1}"))
    if journal:
        facts.append(("span", _fmt_t(picture.duration)))
    if picture.records:
        facts.append(("lanes", len(picture.lanes)))
    parts.append(
        '<dl class="facts">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
        + "</dl>"
    )
    repro = meta.get("repro")
    if repro:
        parts.append(
            '<div class="repro"><span>replay</span><pre id="repro">'
            f'{_e(repro)}</pre><button type="button" id="copy-repro">copy</button></div>'
        )
    versions = dict(meta.get("versions") or {})
    for v in ctx.verdicts:
        versions.update({k: str(x) for k, x in dict(v.get("versions") or {}).items()})
    if versions:
        parts.append(
            '<div class="versions"><span>versions</span> '
            + " ".join(f"<code>{_e(k)} {_e(x)}</code>" for k, x in sorted(versions.items()))
            + "</div>"
        )
    settings = dict(meta.get("settings") or {})
    if settings:
        parts.append(
            '<div class="versions"><span>settings</span> '
            + " ".join(f"<code>{_e(k)}={_e(x)}</code>" for k, x in sorted(settings.items()))
            + "</div>"
        )
    if ctx.links:
        parts.append(
            '<div class="links">'
            + " ".join(f'<a href="{_e(href)}">{_e(label)}</a>' for label, href in ctx.links.items())
            + "</div>"
        )
    if picture.first > 1:
        parts.append(
            f'<p class="none">T1…T{picture.first - 1} are not on this page (it keeps the last '
            f"{len(picture.records)} records; times count from T{picture.first}); trace.json "
            "and <code>reconverge timeline</code> have the whole journal.</p>"
        )
    v = picture.violation
    jump = (
        f'<a class="jump" id="jump" href="#T{v.index}" data-index="{v.index}">jump to the first '
        f"violation: T{v.index} {_e(_fmt_t(v.at))} {_e(v.text)}</a>"
        if v is not None
        else '<span class="jump none" id="jump">no violation in the journal</span>'
    )
    if journal:
        parts.append(jump)
    return "<header>" + "".join(parts) + "</header>"


def k_of_n(outcomes: Sequence[str | None]) -> str:
    """``CAUGHT 3/3`` or ``CAUGHT 2/3, MISSED 1/3`` (a repeat without the case: ``absent``)."""
    n = len(outcomes)
    counts = Counter(o or "absent" for o in outcomes)
    return ", ".join(f"{o} {k}/{n}" for o, k in counts.most_common())


def _repeats(ctx: Context) -> str:
    """k/n per verdict per case; a case whose repeats disagree comes first, highlighted
    (a flake is a bug: it is the row a reader must see), with each repeat's verdict."""
    if not ctx.repeats:
        return ""
    n = max(len(o) for o in ctx.repeats.values())
    differing = sorted(k for k, o in ctx.repeats.items() if len(set(o)) > 1)
    same = sorted(k for k in ctx.repeats if k not in differing)
    rows = []
    for key in differing + same:
        outcomes = ctx.repeats[key]
        bad = key in differing
        each = " ".join(
            f'<span class="rep-one" title="repeat {i}">{i}:{_badge(o or "absent")}</span>'
            for i, o in enumerate(outcomes, 1)
        )
        rows.append(
            f'<tr class="{"rep-differs" if bad else "rep-same"}" data-case="{_e(key)}">'
            f'<td>{_e(key)}</td><td class="rep-kn">{_e(k_of_n(outcomes))}</td>'
            f"<td>{each}</td><td>{'NO' if bad else 'yes'}</td></tr>"
        )
    if differing:
        summary = (
            f'<p class="rep-summary bad" id="repeats-summary">verdicts differ across {n} '
            f"repeats for {len(differing)} of {len(ctx.repeats)} case(s)</p>"
        )
    else:
        summary = (
            f'<p class="rep-summary" id="repeats-summary">identical verdicts {n}/{n} for '
            f"{len(ctx.repeats)} case(s)</p>"
        )
    return (
        '<section id="repeats"><h2>Repeats: k/n per verdict</h2>'
        + summary
        + '<table class="repeats"><thead><tr><th>case</th><th>verdicts</th><th>each repeat</th>'
        "<th>identical</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def _verdict_rows(ctx: Context) -> str:
    rows = [
        (
            v.get("suite", ""),
            v.get("case", ""),
            v.get("variant", ""),
            v.get("fault", ""),
            _fired_text(dict(v.get("fired") or {})),
            v.get("outcome", ""),
            v.get("symptom", ""),
        )
        for v in ctx.verdicts
    ]
    head = ("suite", "case", "variant", "fault", "fired", "verdict", "symptom")
    return '<section id="verdicts"><h2>Verdicts</h2>' + _table(head, rows) + "</section>"


_TRUTH_KEYS = ("diff", "world", "facts", "view", "truth", "findings")


def _findings(ctx: Context, records: Sequence[Record], first: int = 1) -> str:
    rows = []
    for v in ctx.verdicts:
        for f in v.get("findings") or []:
            state = "ok" if f.get("ok") else "NOT OK"
            if not f.get("observed", True):
                state = "unobservable"
            rows.append((v.get("case", ""), f.get("check", ""), state, f.get("symptom", "")))
    table = _table(("case", "check", "state", "symptom"), rows, "findings")
    failure = str(ctx.meta.get("failure") or "")
    if failure:
        table = (
            '<h3>As the case reported it</h3><pre class="failure" id="failure">'
            f"{_e(failure)}</pre>" + table
        )
    checks = []
    for n, r in enumerate(records, first):
        if r.component not in ("check", "leaks"):
            continue
        if r.event == "verdict":
            continue
        bad = violation_of(r) is not None
        extra = {k: r.fields[k] for k in _TRUTH_KEYS if k in r.fields}
        if not bad and not extra:
            continue
        checks.append((n, r, bad, extra))
    items = []
    for n, r, bad, extra in checks:
        body = json.dumps(extra or r.fields, indent=1, default=str, sort_keys=True)
        items.append(
            f'<details{" open" if bad else ""}><summary><a href="#T{n}">T{n}</a> '
            f"{_e(r.component)}/{_e(r.event)} {'<b class=bad>not ok</b>' if bad else ''} "
            f"{_e(r.fields.get('symptom', ''))}</summary><pre>{_e(body)}</pre></details>"
        )
    leaks = [
        (
            f"T{n}",
            r.fields.get("kind", ""),
            r.fields.get("id", ""),
            r.fields.get("pid", ""),
            r.fields.get("latency_ms", ""),
            r.fields.get("evidence", ""),
        )
        for n, r in enumerate(records, first)
        if r.component == "leaks" and r.event == "leak"
    ]
    # a leak checker's finding (e.g. the sandbox cases' "leak") when no detector record exists
    leaks += [
        (f"T{n}", r.event, "", "", "", r.fields.get("symptom", ""))
        for n, r in enumerate(records, first)
        if r.component == "check" and "leak" in r.event and r.fields.get("ok") is False
    ]
    return (
        '<section id="findings"><h2>Findings</h2>'
        + table
        + "<h3>View vs truth (what the checkers saw)</h3>"
        + ("".join(items) if items else '<p class="none">no check recorded a difference</p>')
        + "<h3>Leaks</h3>"
        + _table(("T", "kind", "container", "pid", "latency ms", "evidence"), leaks, "leaks")
        + "</section>"
    )


def _fire_counts(ctx: Context, picture: Picture) -> str:
    declared = []
    for v in ctx.verdicts:
        for name, n in dict(v.get("fired") or {}).items():
            declared.append((v.get("case", ""), name, n, "never fired" if not n else ""))
    seen = Counter(
        str(r.fields.get("name"))
        for r in picture.records
        if r.component == "failpoint" and r.event == "trigger" and r.fields.get("action") != "off"
    )
    journal_rows = [(name, n) for name, n in sorted(seen.items())]
    faults = [
        (
            f"T{f.index}",
            _fmt_t(f.start),
            "instant"
            if f.end is None
            else f"{(f.end - f.start) * 1000:.0f}ms" + (" (to the end)" if f.open_ended else ""),
            f.lane,
            f.label,
        )
        for f in picture.faults
    ]
    return (
        '<section id="faults"><h2>Faults</h2><h3>Declared faults: fire counts</h3>'
        + _table(("case", "fault", "fired", ""), declared, "fired")
        + "<h3>Failpoint triggers in the journal</h3>"
        + _table(("failpoint", "triggers"), journal_rows)
        + "<h3>Fault intervals</h3>"
        + _table(("T", "at", "lasted", "lane", "fault"), faults)
        + "</section>"
    )


def timeline_table(picture: Picture, prefix: str = "") -> str:
    """The T1…Tn table of ``picture`` (row ids ``<prefix>T<n>``, as :func:`swimlanes` links)."""
    t_rows = timeline.rows(picture.records, start=picture.t0, first=picture.first)
    v = picture.violation
    body = []
    for (tn, at, who, event, detail), rec in zip(t_rows, picture.records, strict=True):
        n = int(tn[1:])
        cls = ' class="violation"' if v is not None and n == v.index else ""
        body.append(
            f'<tr id="{prefix}{tn}"{cls}><td><a href="#{prefix}{tn}">{tn}</a></td>'
            f"<td>{_e(at)}</td><td>{_e(lane_of(rec))}</td><td>{_e(who)}</td>"
            f"<td>{_e(event)}</td><td>{_e(detail)}</td></tr>"
        )
    return (
        '<table class="timeline"><thead><tr><th>T</th><th>time</th><th>lane</th><th>who</th>'
        "<th>event</th><th>detail</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>"
    )


def _timeline(picture: Picture) -> str:
    return (
        '<section id="timeline"><h2>Timeline T1…Tn</h2>'
        '<input id="filter" type="search" placeholder="filter rows (text, e.g. shim:sb or Delete)">'
        ' <span id="filter-count"></span>' + timeline_table(picture) + "</section>"
    )


_CSS = """
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;
 background:#fafafa}
header{padding:14px 20px;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:18px;margin:0 0 8px;word-break:break-all}
h2{font-size:15px;margin:18px 0 8px}h3{font-size:13px;margin:14px 0 6px;color:#555}
section{padding:0 20px 10px}
.badge{display:inline-block;padding:1px 7px;border-radius:3px;font-weight:600;color:#fff}
.badge.good{background:#2e7d32}.badge.skip{background:#888}
.verdict{margin:3px 0}.symptom{color:#444}
dl.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:8px 0}
dl.facts dt{color:#777}dl.facts dd{margin:0 0 0 4px;font-family:monospace}
dl.facts dt:after{content:":"}
.repro{display:flex;align-items:center;gap:8px;margin:6px 0}
.repro span,.versions span{color:#777;min-width:60px}
.repro pre{margin:0;padding:4px 8px;background:#f1f1f1;border:1px solid #ddd;overflow-x:auto;
 white-space:pre-wrap;word-break:break-all;flex:1}
.versions{margin:4px 0}.versions code{background:#f1f1f1;padding:1px 5px;margin-right:4px}
.links a{margin-right:10px}
.jump{display:inline-block;margin-top:8px;padding:4px 10px;background:#6a1b9a;color:#fff;
 border-radius:3px;text-decoration:none}.jump.none{background:#999}
.lanes{display:flex;border:1px solid #ddd;background:#fff}
.lane-labels{flex:0 0 170px;border-right:1px solid #ddd;font-size:12px}
.lane-label{display:flex;align-items:center;gap:5px;padding:0 6px;overflow:hidden;
 white-space:nowrap;text-overflow:ellipsis;box-sizing:border-box}
.lane-label:nth-child(even){background:#f7f7f7}
.swatch{display:inline-block;width:9px;height:9px;border-radius:2px;flex:0 0 9px}
.lane-scroll{overflow-x:auto;flex:1}
.tick-label{font-size:10px;fill:#888}
rect.fault{fill:rgba(229,57,53,.13);stroke:rgba(229,57,53,.45);stroke-dasharray:3 2}
.fault-mark line{stroke:#e53935;stroke-width:1.5;stroke-dasharray:4 3}.fault-mark path{fill:#e53935}
.item .span{opacity:.85}.item.err .span{stroke:#b71c1c;stroke-width:2}
.item.err .dot{stroke:#b71c1c;stroke-width:2}
.span-label{font-size:10px;fill:#fff;pointer-events:none}
.violation line{stroke:#6a1b9a;stroke-width:2.5}
.violation text{fill:#6a1b9a;font-weight:600;font-size:11px}
.violation.flash line{stroke-width:6}
.toolbar{margin:6px 0}.toolbar button{margin-right:4px}
table{border-collapse:collapse;background:#fff;margin:4px 0}
th,td{border:1px solid #e0e0e0;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
table.timeline td:nth-child(6){font-family:monospace;font-size:12px;word-break:break-all}
tr.violation td{background:#f3e5f5}tr.hl td{background:#fff59d}
tr:target td{background:#fff59d}
details{margin:3px 0}
pre.failure{background:#fff3f3;border:1px solid #f0caca;padding:6px;overflow-x:auto}
details pre{background:#f7f7f7;padding:6px;overflow-x:auto;max-height:300px}
.bad{color:#c62828}.none{color:#888}
.badge.bad{background:#c62828;color:#fff}
#filter{width:320px;padding:3px}
tr.rep-differs td{background:#ffebee}tr.rep-differs td:first-child{border-left:4px solid #c62828}
.rep-one{margin-right:6px;white-space:nowrap}.rep-summary.bad{font-weight:600}
"""

_JS = r"""
(function(){
  "use strict";
  var svg = document.getElementById("lanes-svg");
  var scroller = document.getElementById("lane-scroll");
  var basePx = svg ? parseFloat(svg.getAttribute("data-px")) : 1;
  var duration = svg ? parseFloat(svg.getAttribute("data-duration")) : 0;
  var zoom = 1;
  var JUMP_SPAN = 2.0;
  var RIGHT_PAD = svg ? parseFloat(svg.getAttribute("data-pad")) : 40;
  function X(t){ return 10 + t * basePx * zoom; }
  function rescale(z){
    if (!svg) { return; }
    zoom = Math.max(0.05, Math.min(z, 400));
    var width = Math.ceil(duration * basePx * zoom) + RIGHT_PAD;
    svg.setAttribute("width", width);
    svg.querySelectorAll("[data-w]").forEach(function(el){ el.setAttribute("width", width); });
    svg.querySelectorAll("rect[data-t]").forEach(function(el){
      var t = parseFloat(el.getAttribute("data-t"));
      el.setAttribute("x", X(t).toFixed(1));
      if (el.hasAttribute("data-e")) {
        var e = parseFloat(el.getAttribute("data-e"));
        var min = el.classList.contains("fault") ? 3 : 2;
        el.setAttribute("width", Math.max((e - t) * basePx * zoom, min).toFixed(1));
      }
    });
    svg.querySelectorAll("text.span-label").forEach(function(el){
      var t = parseFloat(el.getAttribute("data-t")), e = parseFloat(el.getAttribute("data-e"));
      el.setAttribute("x", (X(t) + 3).toFixed(1));
      var w = (e - t) * basePx * zoom;
      el.style.display = w >= 7 * parseInt(el.getAttribute("data-len"), 10) ? "" : "none";
    });
    svg.querySelectorAll("circle[data-t]").forEach(function(el){
      el.setAttribute("cx", X(parseFloat(el.getAttribute("data-t"))).toFixed(1));
    });
    svg.querySelectorAll("g[data-t]").forEach(function(g){
      var x = X(parseFloat(g.getAttribute("data-t")));
      g.querySelectorAll("line").forEach(function(l){
        l.setAttribute("x1", x.toFixed(1)); l.setAttribute("x2", x.toFixed(1));
      });
      var dx = g.classList.contains("tick") ? 2 : 4;
      g.querySelectorAll("text").forEach(function(tx){
        tx.setAttribute("x", (x + dx).toFixed(1));
      });
      g.querySelectorAll("path").forEach(function(p){
        var top = p.getAttribute("d").split(" ")[0].split(",")[1];
        var y2 = parseFloat(top) + 8;
        p.setAttribute("d", "M" + (x - 5).toFixed(1) + "," + top + " L" +
          (x + 5).toFixed(1) + "," + top + " L" + x.toFixed(1) + "," + y2);
      });
    });
  }
  function jump(ev){
    var v = document.getElementById("first-violation");
    if (!v) { return; }
    if (ev) { ev.preventDefault(); }
    var t = parseFloat(v.getAttribute("data-t"));
    if (scroller) {
      // detail around the violation: at most JUMP_SPAN seconds across the view
      var want = scroller.clientWidth / JUMP_SPAN;
      if (basePx * zoom < want) { rescale(want / basePx); }
      scroller.scrollLeft = Math.max(0, X(t) - scroller.clientWidth / 2);
    }
    v.classList.add("flash");
    setTimeout(function(){ v.classList.remove("flash"); }, 1200);
    var row = document.getElementById("T" + v.getAttribute("data-index"));
    document.querySelectorAll("tr.hl").forEach(function(r){ r.classList.remove("hl"); });
    if (row) { row.classList.add("hl"); }
    var lanes = document.getElementById("lanes");
    if (lanes) { lanes.scrollIntoView({block: "start"}); }
    document.body.setAttribute("data-jumped", v.getAttribute("data-index"));
  }
  var j = document.getElementById("jump");
  if (j && j.tagName === "A") { j.addEventListener("click", jump); }
  var bind = function(id, f){
    var b = document.getElementById(id);
    if (b) { b.addEventListener("click", f); }
  };
  bind("zoom-in", function(){ rescale(zoom * 2); });
  bind("zoom-out", function(){ rescale(zoom / 2); });
  bind("zoom-fit", function(){
    if (!scroller || duration <= 0) { return; }
    rescale((scroller.clientWidth - 50) / (duration * basePx));
  });
  bind("copy-repro", function(){
    var pre = document.getElementById("repro");
    if (!pre) { return; }
    var range = document.createRange(); range.selectNodeContents(pre);
    var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
    try {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(pre.textContent).catch(function(){});
      }
    } catch (e) { /* selection stays: copy by hand */ }
  });
  var filter = document.getElementById("filter");
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.timeline tbody tr"));
  var count = document.getElementById("filter-count");
  if (filter) {
    filter.addEventListener("input", function(){
      var q = filter.value.toLowerCase(), shown = 0;
      rows.forEach(function(r){
        var hit = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
        r.style.display = hit ? "" : "none"; if (hit) { shown++; }
      });
      if (count) { count.textContent = q ? shown + " of " + rows.length + " rows" : ""; }
    });
  }
  document.body.setAttribute("data-ready", "1");
})();
"""


#: the zoom buttons the page script binds (for the unprefixed :func:`swimlanes` only)
TOOLBAR = (
    '<div class="toolbar"><button type="button" id="zoom-in">zoom in</button>'
    '<button type="button" id="zoom-out">zoom out</button>'
    '<button type="button" id="zoom-fit">fit</button> '
    '<span class="none">hover for details; click an event for its row; shaded = fault '
    "active; purple line = first violation</span></div>"
)


def render(picture: Picture, ctx: Context) -> str:
    """The whole page as one string (no external resource of any kind)."""
    lanes_html = (
        swimlanes(picture) if picture.records else '<p class="none">the journal is empty</p>'
    )
    journal = (
        '<section id="swimlanes"><h2>Swimlanes</h2>'
        + TOOLBAR
        + lanes_html
        + "</section>"
        + _verdict_rows(ctx)
        + _findings(ctx, picture.records, picture.first)
        + _fire_counts(ctx, picture)
        + _timeline(picture)
    )
    if ctx.explore is not None and not picture.records:
        # explorer output without a journal (a merge, a saved schedule): nothing to draw
        journal = ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>reconverge: {_e(ctx.title)}</title>"
        f"<style>{_CSS}{matrix_view.CSS}{schedule_view.CSS}</style>"
        "</head><body>"
        + _header(ctx, picture)
        + matrix_view.render(ctx.matrix)
        + _repeats(ctx)
        + schedule_view.render(ctx.explore)
        + journal
        + '<footer><section><p class="none">Generated by reconverge. The same journal as a '
        "Chrome/Perfetto trace: <code>trace.json</code> beside this file (open it in "
        "ui.perfetto.dev or chrome://tracing).</p></section></footer>"
        + f"<script>{_JS}</script></body></html>\n"
    )
