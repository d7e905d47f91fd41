"""Explorer output on the report page: merged shard verdicts and saved failing schedules.

Why a view of its own: ``reconverge merge`` has no journal to draw — its facts are the
shards' verdict rows (which shard found what) and the schedule files they saved — and a
saved schedule is read as two T1…Tn tables, the shrunk one a replay runs next to the
original the explorer first found, each with its k-of-n confirmation. The page around it
(header, styles, script) is :func:`harness.report.html.render`'s; this module only builds
sections from :mod:`harness.explore.schedule`'s model so the page and ``reconverge repro``
read a file the same way.

Two sources, one shape (:class:`ExploreView`):

- ``reconverge merge DIR…`` (:func:`from_shards`): each shard's ``verdicts.json`` rows with
  the directory they came from, and its ``failures/*.json``;
- ``reconverge report <saved.json>`` (:func:`from_file`): one saved schedule.

A saved file with ``<name>.journal.jsonl`` beside it (the journal of the failing run of the
shrunk schedule, :mod:`harness.explore.failure_journal`) also gets that run's swimlanes and
T1…Tn table under its schedule tables — drawn by :mod:`harness.report.html` from
:func:`harness.report.lanes.build`, as a suite's failure bundle is. The first such run on
a page takes the unprefixed element ids the page script zooms; later ones (a merge of
several) are prefixed ``s<n>-`` and drawn still.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.explore import failure_journal, regress
from harness.explore import schedule as S
from harness.journal.record import Record
from harness.report import lanes

#: outcomes drawn green (as on the rest of the page)
_GOOD = frozenset({"PASSED", "CONVERGED", "CAUGHT"})
#: records of one saved run drawn at most (the last ones, numbered as in the whole journal)
JOURNAL_LIMIT = 10_000


@dataclass(frozen=True)
class SavedFile:
    """A saved failing schedule and where it was read from (shown as its origin)."""

    origin: str
    saved: S.Saved
    #: the failing run's journal saved beside the file ([] when there is none)
    journal: list[Record] = field(default_factory=list)


@dataclass
class ExploreView:
    """Verdict rows tagged with their shard, plus the saved schedules to draw."""

    #: (shard origin, verdict row as a dict) in merge order
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    saved: list[SavedFile] = field(default_factory=list)
    shards: int = 0


def from_shards(shards: Sequence[tuple[Path, Sequence[dict[str, Any]]]]) -> ExploreView:
    """The view of merged shard outputs: ``(directory, rows)`` per shard, in merge order;
    each directory's ``failures/*.json`` are its saved schedules (a malformed one raises
    :class:`ReconvergeError`, one clear line: skipping it would hide a failure)."""
    view = ExploreView(shards=len(shards))
    for directory, rows in shards:
        origin = str(directory)
        view.rows += [(origin, dict(r)) for r in rows]
        for f in sorted((directory / "failures").glob("*.json")):
            view.saved.append(_saved_file(f))
    return view


def from_file(path: Path) -> ExploreView:
    """The view of one saved schedule file (``reconverge report <saved.json>``)."""
    return ExploreView(saved=[_saved_file(path)])


def _saved_file(path: Path) -> SavedFile:
    return SavedFile(str(path), regress.load(path), failure_journal.read(path))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(outcome: str) -> str:
    kind = "good" if outcome in _GOOD else "skip" if outcome == "SKIPPED" else "bad"
    return f'<span class="badge {kind}">{_e(outcome)}</span>'


def steps_table(sched: S.Schedule, cls: str) -> str:
    """T1…Tn, one row per step (the rows of :func:`harness.explore.schedule.table`)."""
    if not sched.steps:
        return '<p class="none">(empty schedule)</p>'
    body = "".join(
        f"<tr><td>T{i}</td><td>{_e(s.op)}</td><td>{_e(s.describe())}</td></tr>"
        for i, s in enumerate(sched.steps, 1)
    )
    return (
        f'<table class="steps {cls}"><thead><tr><th>T</th><th>step</th><th>detail</th></tr>'
        f"</thead><tbody>{body}</tbody></table>"
    )


def _journal(item: SavedFile, prefix: str) -> str:
    """The failing run's swimlanes and T1…Tn (the suites' bundle drawing, reused)."""
    from harness.report import html as page  # html imports this module: import when drawn

    recs = item.journal
    skip = max(len(recs) - JOURNAL_LIMIT, 0)
    picture = lanes.build(recs[skip:], first=skip + 1)
    where = failure_journal.path_for(Path(item.origin)).name
    return (
        f'<div class="saved-journal" id="{prefix}journal"><h4>the failing run of the shrunk '
        f"schedule: {len(recs)} journal record(s) ({_e(where)}"
        + (f"; the last {JOURNAL_LIMIT} drawn" if skip else "")
        + ")</h4>"
        + _violation(picture, prefix)
        + (page.TOOLBAR if not prefix else "")
        + page.swimlanes(picture, prefix)
        + f"<details open><summary>timeline T{picture.first}…T{len(recs)}</summary>"
        + page.timeline_table(picture, prefix)
        + "</details></div>"
    )


def _violation(picture: lanes.Picture, prefix: str) -> str:
    """A link to the run's first violation; the unprefixed run's is the page's ``#jump``
    (the script zooms the lanes around it and highlights its row)."""
    v = picture.violation
    if v is None:
        return '<p class="none">no violation in this run\'s journal</p>'
    text = f"first violation T{v.index}: {_e(v.text)}"
    if prefix:
        return f'<p class="symptom"><a href="#{prefix}T{v.index}">{text}</a></p>'
    return (
        f'<p><a class="jump" id="jump" href="#T{v.index}" data-index="{v.index}">jump to the '
        f"{text}</a></p>"
    )


def _one(n: int, item: SavedFile, prefix: str = "") -> str:
    s = item.saved
    meta = s.meta
    shrunk = (
        f'<div class="sched-col"><h4>shrunk: {len(s.schedule)} step(s) (what a replay runs)'
        f'</h4><p class="confirm">{_e(meta.get("confirm") or "confirmation not recorded")}</p>'
        + steps_table(s.schedule, "shrunk")
        + "</div>"
    )
    if s.original is not None:
        original = (
            f'<div class="sched-col"><h4>original: {len(s.original)} step(s) (as first found)'
            f'</h4><p class="confirm">{_e(s.original_confirm or "confirmation not recorded")}'
            "</p>" + steps_table(s.original, "original") + "</div>"
        )
    else:
        before = meta.get("steps_before")
        original = (
            '<div class="sched-col"><h4>original</h4><p class="none">not in this file (saved '
            "before the original schedule was recorded"
            + (f"; it had {_e(before)} step(s)" if before is not None else "")
            + ")</p></div>"
        )
    facts = [
        ("bugs", ", ".join(s.schedule.bugs) or "none (all fixes on)"),
        ("seed", meta.get("seed", "")),
        ("check", meta.get("check", "")),
        ("time to find", f"{meta['time_to_find_s']}s" if "time_to_find_s" in meta else ""),
        ("found by", meta.get("command", "")),
    ]
    return (
        f'<div class="saved-schedule" id="schedule-{n}"><h3>{_badge(s.expected)} '
        f"{_e(item.origin)}</h3>"
        f'<p class="symptom">{_e(s.symptom)}</p>'
        '<dl class="facts">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts if v not in ("", None))
        + "</dl>"
        + f'<pre class="replay">reconverge repro {_e(item.origin)}</pre>'
        + f'<div class="sched-pair">{shrunk}{original}</div>'
        + (_journal(item, prefix) if item.journal else "")
        + "</div>"
    )


def _shards(view: ExploreView) -> str:
    if not view.shards:
        return ""
    counts = Counter(str(r.get("outcome", "?")) for _, r in view.rows)
    summary = (
        f'<p id="merge-counts">{len(view.rows)} row(s) from {view.shards} shard(s); '
        + ", ".join(f"{_e(o)} {k}" for o, k in sorted(counts.items()))
        + f"; {len(view.saved)} saved failing schedule(s)</p>"
    )
    body = "".join(
        f"<tr><td>{_e(origin)}</td><td>{_e(r.get('case', ''))}</td>"
        f"<td>{_e(r.get('variant', ''))}</td><td>{_badge(str(r.get('outcome', '?')))}</td>"
        f"<td>{_e(r.get('symptom', ''))}</td></tr>"
        for origin, r in view.rows
    )
    return (
        '<section id="merged"><h2>Merged shards</h2>'
        + summary
        + '<table class="merged"><thead><tr><th>shard</th><th>case</th><th>variant</th>'
        f"<th>verdict</th><th>symptom</th></tr></thead><tbody>{body}</tbody></table></section>"
    )


def render(view: ExploreView | None) -> str:
    """The sections for ``view`` ("" without one, so other pages are unchanged)."""
    if view is None:
        return ""
    parts, drawn = [], 0
    for n, item in enumerate(view.saved, 1):
        # the first journal drawn gets the ids the page script binds (zoom, jump, rows)
        parts.append(_one(n, item, "" if not drawn else f"s{n}-"))
        drawn += bool(item.journal)
    saved = "".join(parts) if view.saved else '<p class="none">no failing schedule was saved</p>'
    return (
        _shards(view)
        + '<section id="schedules"><h2>Saved failing schedules: shrunk next to original</h2>'
        + saved
        + "</section>"
    )


CSS = """
.sched-pair{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.sched-col h4{margin:6px 0 2px;font-size:13px}.confirm{margin:2px 0;color:#555}
.saved-schedule{border-top:1px solid #ddd;padding-top:6px;margin-top:10px}
.saved-schedule h3{word-break:break-all}
pre.replay{background:#f1f1f1;border:1px solid #ddd;padding:4px 8px;margin:4px 0}
.saved-journal{margin-top:10px}.saved-journal .lanes{margin:6px 0}
"""
