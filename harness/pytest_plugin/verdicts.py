"""Verdicts meet pytest: the recorder, a row for every suite case, the table, the outputs.

Loaded by the reconverge plugin (``pytest_plugins``). The model and its rules are
:mod:`harness.verdict`'s; here is only *when* a row is made and *where* it goes:

- each phase of a case (setup, call, teardown) publishes the case's current row as the
  report property ``reconverge_verdict`` (JSON of :class:`harness.verdict.Verdict`): that
  property is how a row travels from an xdist worker to the controller, and what other
  hooks (the version matrix) read and stamp;
- the controller (or the only process) takes the row from each report in
  ``pytest_runtest_logreport`` and, before JUnit sees the report, replaces the JSON with
  separate properties — ``verdict``, ``symptom``, ``seed``, ``repro``, ``bundle`` — and adds
  ``[[ATTACHMENT|path]]`` lines for the failure bundle's files to the case's system-out;
- a collected suite case that never ran (``-x``, ``--maxfail``, Ctrl-C, a crashed worker)
  gets a ``SKIPPED`` row with ``status`` "not run", and a module that failed to import gets
  an ``ERROR`` row (case ``(collection)``): one row per collected suite case, whatever
  happened to it;
- at the end of the session ``verdicts.json`` is written (always: see :func:`verdicts_path`)
  and the table is printed.

Why rows are not built from the terminal reporter's stats: the file must be written even
when the terminal reporter is disabled, and stats do not know collected-but-not-run cases.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.verdict import Verdict

#: The report property a row travels in (worker -> controller, and to other hooks).
VERDICT_KEY = "reconverge_verdict"
#: The JUnit properties a row is split into (in this order), when set.
JUNIT_PROPERTIES = ("verdict", "symptom", "seed", "repro", "bundle")
#: Where verdicts.json goes without ``--reconverge-artifacts`` (relative to the rootdir).
DEFAULT_DIR = ".reconverge"
#: A collected suite case the session stopped before.
NOT_RUN = "not run: the session stopped before this case (-x, --maxfail, Ctrl-C or a lost worker)"

_RECORDER = pytest.StashKey["VerdictRecorder"]()
_ROW = pytest.StashKey["Verdict"]()
_BUNDLE = pytest.StashKey[str]()
_STATE = pytest.StashKey["_SessionRows"]()
_WORKER_OUTPUT = "reconverge_collected"


class VerdictRecorder:
    """What a suite case tells the verdict table (exactly one verdict per case)."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.t0 = time.monotonic()
        self.value: Any = None

    @property
    def since(self) -> float:
        """When the case started (monotonic): fault counts and journal windows start here."""
        return self.t0

    def record(
        self,
        *,
        suite: str,
        case: str,
        variant: str,
        fault: str,
        outcome: str,
        symptom: str = "",
        fired: dict[str, int] | None = None,
        findings: list[dict[str, Any]] | None = None,
        reason: str = "",
        versions: dict[str, str] | None = None,
    ) -> Any:
        from harness import journal
        from harness.verdict import Verdict

        v = Verdict(
            suite,
            case,
            variant,
            fault,
            str(outcome),
            symptom[:200],
            round(time.monotonic() - self.t0, 2),
            fired=dict(fired or {}),
            findings=list(findings or []),
            nodeid=self.item.nodeid,
            reason=reason,
            versions=dict(versions or {}),
        )
        self.value = v
        journal.emit("verdict", str(outcome), **v.journal_fields())
        return v

    def judge(
        self,
        *,
        suite: str,
        case: str,
        variant: str,
        fault: str,
        findings: list[Any],
        fired: dict[str, int],
        symptom: Any = None,
        fixed_text: str = "view = truth",
        versions: dict[str, str] | None = None,
    ) -> Any:
        """Decide (harness.verdict rules), record, and fail the case unless it is as expected.

        INCONCLUSIVE fails under ``--reconverge-strict`` and skips (with its reason)
        otherwise: it is never a pass.
        """
        from harness import journal
        from harness.verdict import Outcome, decide, evidence

        outcome, text = decide(
            variant=variant, findings=findings, fired=fired, symptom=symptom, fixed_text=fixed_text
        )
        v = self.record(
            suite=suite,
            case=case,
            variant=variant,
            fault=fault,
            outcome=outcome,
            symptom=text,
            fired=fired,
            findings=[f.summary() for f in findings],
            reason=text if outcome is Outcome.INCONCLUSIVE else "",
            versions=versions,
        )
        journal.emit("check", "verdict", case=case, variant=variant, outcome=str(outcome))
        if v.ok:
            return v
        detail = f"{case} [{variant}]: {outcome}: {text}\nfired: {fired}\n{evidence(findings)}"
        if outcome is Outcome.INCONCLUSIVE and not self.item.config.getoption("reconverge_strict"):
            pytest.skip(f"INCONCLUSIVE: {text}")
        raise AssertionError(detail)


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> VerdictRecorder:
    """Record this case's verdict for the table ``./ci/suites`` prints."""
    rec = VerdictRecorder(request.node)
    request.node.stash[_RECORDER] = rec
    return rec


# -- one row per case, on the side that runs it ---------------------------------------------


def _identity(item: pytest.Item) -> tuple[str, str, str]:
    """(suite, case, variant) of a case that recorded nothing, from its node."""
    callspec = getattr(item, "callspec", None)
    ident = callspec.id if callspec is not None else ""
    variant = "buggy" if "buggy" in ident else "fixed" if "fixed" in ident else "-"
    suite = Path(str(item.fspath)).stem.removeprefix("test_")
    return suite, getattr(item, "originalname", item.name), variant


def row_without_verdict(item: pytest.Item, outcome: str, reason: str) -> Verdict:
    """A row for a suite case that recorded nothing (skipped, errored, forgot, not run)."""
    from harness.verdict import Verdict

    suite, case, variant = _identity(item)
    return Verdict(
        suite, case, variant, "-", outcome, reason[:200], 0.0, nodeid=item.nodeid, reason=reason
    )


def _skip_reason(report: Any) -> str:
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def _row_for(item: pytest.Item, report: Any) -> Verdict | None:
    """The case's row after this phase: its recorded verdict, else a SKIPPED / ERROR row.

    A suite case that *passed* without recording a verdict is turned into a failure: a
    green case that concluded nothing is exactly the vacuous pass the verdict model exists
    to prevent.
    """
    rec = item.stash.get(_RECORDER, None)
    recorded = rec.value if rec is not None else None
    if recorded is not None:
        return recorded  # type: ignore[no-any-return]
    if item.get_closest_marker("suite") is None:
        return None
    prev = item.stash.get(_ROW, None)
    if report.skipped and report.when in ("setup", "call"):
        return row_without_verdict(item, "SKIPPED", _skip_reason(report))
    if report.failed and (prev is None or prev.outcome == "SKIPPED"):
        what = {"setup": "setup ", "teardown": "teardown "}.get(report.when, "")
        crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", "")
        msg = getattr(report, "longreprtext", "").strip().splitlines()
        text = crash.splitlines()[0] if crash else msg[-1] if msg else "failed"
        return row_without_verdict(item, "ERROR", f"{what}error: {text}")
    if report.when == "call" and report.passed:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: a suite case must record a verdict (it recorded none)"
        return row_without_verdict(item, "ERROR", "the case recorded no verdict")
    return prev


def _complete(item: pytest.Item, row: Verdict) -> Verdict:
    """The row with what only the session knows: seeds, the replay line, the bundle, versions."""
    import dataclasses

    from harness.pytest_plugin import case_seed, repro_command, session_seed, session_versions

    seed = session_seed(item.config)
    return dataclasses.replace(
        row,
        nodeid=row.nodeid or item.nodeid,
        seed=seed,
        case_seed=case_seed(seed, item.nodeid),
        repro=row.repro or repro_command(item.config, item.nodeid),
        bundle=item.stash.get(_BUNDLE, "") or row.bundle,
        versions={**session_versions(item.config), **row.versions},
    )


def publish(item: pytest.Item, report: Any, *, again: bool = False) -> dict[str, Any] | None:
    """Make, complete and attach this phase's row to ``report``; returns it as a dict.

    ``again``: the row already made for this report, completed anew (the bundle was just
    written) — its outcome is not decided twice.
    """
    row = item.stash.get(_ROW, None) if again else _row_for(item, report)
    if row is None:
        return None
    row = _complete(item, row)
    item.stash[_ROW] = row
    data = row.to_dict()
    set_row(report, data)
    return data


def set_row(report: Any, row: dict[str, Any]) -> None:
    """Put ``row`` on ``report`` as its ``reconverge_verdict`` property (replacing one)."""
    props = [(k, v) for k, v in report.user_properties if k != VERDICT_KEY]
    report.user_properties[:] = [*props, (VERDICT_KEY, json.dumps(row))]


def row_of(report: Any) -> dict[str, Any] | None:
    """The row a report carries, or None."""
    rows = [v for k, v in getattr(report, "user_properties", ()) if k == VERDICT_KEY]
    if not rows:
        return None
    data = json.loads(str(rows[-1])) if isinstance(rows[-1], str) else rows[-1]
    return data if isinstance(data, dict) else None


def note_bundle(item: pytest.Item, path: Path) -> None:
    """The failure bundle written for this case (its row names it from now on)."""
    item.stash[_BUNDLE] = str(path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember every selected suite case, so one the session never reaches still has a row."""
    state = _state(session.config)
    for item in session.items:
        if item.get_closest_marker("suite") is not None:
            state.collected.setdefault(item.nodeid, _not_run_row(item))


def _not_run_row(item: pytest.Item) -> dict[str, Any]:
    import dataclasses

    row = dataclasses.replace(row_without_verdict(item, "SKIPPED", NOT_RUN), status="not run")
    return row.to_dict()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands its collected suite cases to the controller; the controller writes."""
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_WORKER_OUTPUT] = json.dumps(list(_state(config).collected.values()))
        return
    write_verdicts(config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: the controller learns the suite cases a worker collected."""
    raw = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if not raw:
        return
    state = _state(node.config)
    for row in json.loads(raw):
        state.collected.setdefault(row["nodeid"], row)


# -- the controller: every row, the JUnit properties, the file -------------------------------


class _SessionRows:
    """Rows by node id, as the controller (or the only process) saw them."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.status: dict[str, str] = {}
        self.collected: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.written: Path | None = None


def _state(config: pytest.Config) -> _SessionRows:
    state = config.stash.get(_STATE, None)
    if state is None:
        state = config.stash[_STATE] = _SessionRows()
    return state


def _status(prev: str, report: Any) -> str:
    """pytest's outcome of a case so far: ``passed``, ``failed``, ``skipped`` or ``error``."""
    if report.when in ("setup", "teardown"):
        if report.failed:
            return "error"
        if report.skipped:
            return "skipped"
        return prev
    return {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome]


class Controller:
    """The controller's (or the only process's) side: keeps every row as reports arrive.

    Registered in ``pytest_configure`` except on xdist workers, which forward their
    reports as they are (row JSON included) for the controller to do this.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the row; replace its JSON by JUnit properties (before JUnit reads them)."""
        row = row_of(report)
        if row is None:
            return
        state = _state(self.config)
        status = _status(state.status.get(report.nodeid, ""), report)
        state.status[report.nodeid] = status
        row["status"] = status
        state.rows[report.nodeid] = row
        keep = (VERDICT_KEY, *JUNIT_PROPERTIES)
        props = [(k, v) for k, v in report.user_properties if k not in keep]
        split = {
            "verdict": row.get("outcome"),
            "symptom": row.get("symptom"),
            "seed": row.get("seed"),
            "repro": row.get("repro"),
            "bundle": row.get("bundle"),
        }
        props += [(k, split[k]) for k in JUNIT_PROPERTIES if split[k] not in (None, "")]
        report.user_properties[:] = props
        if report.when == "teardown" and row.get("bundle"):
            _attach_bundle(self.config, report, Path(str(row["bundle"])))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module that failed to import is an ERROR row: its suite cases could not run."""
        if not report.failed:
            return
        from harness.verdict import Verdict

        text = str(report.longrepr).strip().splitlines()
        last = text[-1].removeprefix("E").strip() if text else "failed"
        reason = f"collection error: {last}"
        suite = Path(report.nodeid.split("::")[0]).stem.removeprefix("test_")
        row = Verdict(
            suite, "(collection)", "-", "-", "ERROR", reason[:200], 0.0, nodeid=report.nodeid
        )
        row.reason, row.status = reason, "error"
        _state(self.config).errors[report.nodeid] = row.to_dict()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Controller(config), "reconverge-verdicts-controller")


def _attach_bundle(config: pytest.Config, report: Any, bundle: Path) -> None:
    """``[[ATTACHMENT|<file>]]`` per bundle file in the case's JUnit system-out.

    The convention Jenkins' JUnit attachments and GitLab's test reports read. pytest has no
    public API for a case's system-out, so this reaches into its JUnit writer; when that
    changes, the ``bundle`` property still names the directory.
    """
    try:
        from xml.etree import ElementTree as ET

        from _pytest.junitxml import xml_key
    except ImportError:
        return
    xml = config.stash.get(xml_key, None)
    if xml is None or not bundle.is_dir():
        return
    files = sorted(p for p in bundle.iterdir() if p.is_file())
    if not files:
        return
    node = ET.Element("system-out")
    node.text = "".join(f"[[ATTACHMENT|{p.absolute()}]]\n" for p in files)
    try:
        xml.node_reporter(report).nodes.append(node)
    except Exception:  # pytest internals moved: the property still names the bundle
        pass


def session_verdicts(config: pytest.Config) -> list[Verdict]:
    """Every row of the session (controller): run cases, not-run cases, collection errors."""
    if config.option.collectonly:
        return []  # --collect-only ran nothing: no rows, no table, no file
    state = _state(config)
    merged = {**state.collected, **state.errors, **state.rows}
    if not merged:
        return []  # a session without suite cases imports nothing more
    from harness.pytest_plugin import session_seed, session_versions
    from harness.verdict import Verdict

    seed = session_seed(config)
    versions = session_versions(config)
    out = []
    for nodeid, row in merged.items():
        v = Verdict.from_dict(row)
        v.nodeid = v.nodeid or nodeid
        if v.seed is None:
            v.seed = seed
        if not v.repro:
            from harness.pytest_plugin import case_seed, repro_command

            v.case_seed = case_seed(seed, v.nodeid)
            v.repro = repro_command(config, v.nodeid)
        v.versions = {**versions, **v.versions}
        out.append(v)
    return out


def verdicts_path(config: pytest.Config) -> Path:
    """``<--reconverge-artifacts>/verdicts.json``, else ``<rootdir>/.reconverge/verdicts.json``."""
    from harness.verdict import FILE_NAME

    art = config.getoption("reconverge_artifacts", default=None)
    if art:
        return Path(art) / FILE_NAME
    return Path(config.rootpath) / DEFAULT_DIR / FILE_NAME


def write_verdicts(config: pytest.Config) -> Path | None:
    """Write ``verdicts.json`` (controller only); returns where, or None.

    Always written with ``--reconverge-artifacts``; otherwise whenever the session has at
    least one row — a session of plain tests in a project that merely has reconverge
    installed leaves nothing behind.
    """
    rows = session_verdicts(config)
    explicit = bool(config.getoption("reconverge_artifacts", default=None))
    if not rows and not explicit:
        return None
    from harness.pytest_plugin import session_seed, session_versions
    from harness.report import bundle
    from harness.verdict import document

    path = verdicts_path(config)
    settings = {k: str(v) for k, v in bundle.session_meta(config)["settings"].items()}
    doc = document(
        rows, seed=session_seed(config), versions=session_versions(config), settings=settings
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not explicit:  # our own directory: keep it out of the user's version control
            ignore = path.parent / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# written by reconverge's pytest plugin\n*\n")
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        print(f"reconverge: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    _state(config).written = path
    return path


def render_verdicts(verdicts: list[Any]) -> str:
    """The verdict table: one row per suite case, the fault-fired count beside each."""
    head = ("suite", "case", "variant", "fault", "fired", "verdict", "time", "symptom")
    rows = [
        (
            v.suite,
            v.case,
            v.variant,
            v.fault[:60],
            v.fired_text(),
            v.outcome,
            f"{v.seconds:.1f}s",
            v.symptom,
        )
        for v in sorted(verdicts, key=lambda v: (v.suite, v.case, v.variant, v.fault))
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:-1], widths, strict=True)) + "  symptom"]
    lines.append("-" * (sum(widths) + 2 * len(widths) + 7))
    for r in rows:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        )
    return "\n".join(lines)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    from harness.pytest_plugin import session_seed

    verdicts = session_verdicts(config)
    if not verdicts:
        return
    terminalreporter.write_sep("=", "reconverge verdicts")
    terminalreporter.write_line(render_verdicts(verdicts))
    times = sorted(v.seconds for v in verdicts)
    median = times[len(times) // 2]
    terminalreporter.write_line(
        f"{len(verdicts)} case(s); median {median:.1f} s per case; seed {session_seed(config)}"
    )
    written = _state(config).written
    if written is not None:
        terminalreporter.write_line(f"verdicts: {written}")
