"""``reconverge timeline`` and ``reconverge report``: replay an artifact on a terminal or a page.

Both take a failure bundle, a run directory (kept with ``--reconverge-keep``), an artifacts
directory or a journal file; a missing or empty one is a :class:`ReconvergeError` (one line,
exit 2) raised by :func:`harness.report.source.load`. ``reconverge report`` also takes a
schedule file the explorer saved (``*.json``): its page shows the shrunk schedule next to the
original and, when ``<name>.journal.jsonl`` lies beside it, the failing run's swimlanes and
T1…Tn under them (:mod:`harness.report.schedule_view`).
"""

from __future__ import annotations

from pathlib import Path

from harness.report import bundle, matrix_view, schedule_view, source, timeline


def timeline_cmd(path: str, *, tail: int | None = None) -> int:
    """Print the T1…Tn table of an artifact, then its replay line when it has one."""
    ev = source.load(path)
    print(timeline.render(ev.records, tail=tail, title=f"timeline of {ev.title}"))
    if ev.meta.get("repro"):
        print(f"replay: {ev.meta['repro']}")
    return 0


def report_cmd(path: str, *, output: str | None = None, trace: str | None = None) -> int:
    """Write the HTML report (default ``<dir>/report.html``) and the trace JSON beside it."""
    if path.endswith(".json") and Path(path).is_file():
        return _saved_schedule_report(Path(path), output)
    ev = source.load(path)
    base = ev.path if ev.path.is_dir() else ev.path.parent
    out = Path(output) if output else base / "report.html"
    page, tr = bundle.render_report(
        ev.records,
        title=ev.title,
        meta=ev.meta,
        verdicts=ev.verdicts,
        matrix=matrix_view.load(base) if ev.kind == "run" else None,  # <artifacts>/matrix.json
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    trace_path = Path(trace) if trace else out.with_name(out.stem + ".trace.json")
    if out.name == "report.html" and not trace:
        trace_path = out.with_name("trace.json")
    trace_path.write_text(tr)
    print(f"report: {out}")
    print(f"trace:  {trace_path} (ui.perfetto.dev or chrome://tracing)")
    return 0


def _saved_schedule_report(path: Path, output: str | None) -> int:
    """``reconverge report <saved.json>``: one page, ``<stem>.report.html`` beside the file."""
    view = schedule_view.from_file(path)
    out = Path(output) if output else path.with_name(path.stem + ".report.html")
    saved = view.saved[0].saved
    row = {"case": path.stem, "outcome": saved.expected, "symptom": saved.symptom}
    page, _ = bundle.render_report(
        [], title=f"saved schedule {path.name}", meta={}, verdicts=[row], explore=view
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    kept = view.saved[0].journal
    print(f"report: {out}")
    print(
        f"journal: {len(kept)} record(s) of the failing run drawn"
        if kept
        else "journal: none beside the file (schedule tables only)"
    )
    return 0
