"""pytest side of the reports: ``--reconverge-keep``, the run's journal saved, the session page.

Loaded by the reconverge plugin (``pytest_plugins``). Why a module of its own: the verdict
hooks and the report hooks change for different reasons; here is only what turns a session
into artifacts a person can open later:

- at the end of each run (one per xdist worker) its journal files are copied into
  ``<artifacts>/journal/`` — the per-process files merge by the shared monotonic clock, so
  the artifacts directory is itself a run directory for ``reconverge timeline/report``;
- with ``--reconverge-keep``, a run with a failed case keeps its directory (moved out of
  the run root, whose next start-up sweep would remove it);
- at the end of the session ``<artifacts>/report.html`` + ``trace.json`` + ``meta.json``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.run import Run

FAILED = pytest.StashKey[bool]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("reconverge").addoption(
        "--reconverge-keep",
        action="store_true",
        default=False,
        help="keep the run directory of a session with a failed case (moved to "
        "<artifacts>/runs/<id>, or <run root>.kept/<id> without --reconverge-artifacts) "
        "for reconverge timeline/report",
    )


def _artifacts(config: pytest.Config) -> Path | None:
    art = config.getoption("reconverge_artifacts", default=None)
    return Path(art) if art else None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the session's artifacts afresh (the controller only: workers add to them)."""
    config = session.config
    config.stash[_STARTED] = time.time()
    art = _artifacts(config)
    if art is None or hasattr(config, "workerinput"):
        return
    shutil.rmtree(art / "journal", ignore_errors=True)
    for name in ("report.html", "trace.json", "meta.json"):
        (art / name).unlink(missing_ok=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.config.stash[FAILED] = True
    return report


def keeping(config: pytest.Config) -> bool:
    """Will this run's directory be kept (``--reconverge-keep`` and a case failed)?"""
    return bool(config.getoption("reconverge_keep", default=False)) and config.stash.get(
        FAILED, False
    )


def kept_path(config: pytest.Config, run: Run) -> Path:
    """Where ``--reconverge-keep`` will put this run's directory at the end of the session."""
    from harness.report import bundle

    return bundle.kept_root(_artifacts(config)) / run.dir.name


def close_run(config: pytest.Config, run: Run) -> Path | None:
    """Close the session's run: save its journal, keep its directory when asked.

    Returns where the directory was kept, or None.
    """
    from harness.report import bundle

    art = _artifacts(config)
    if art is not None:
        bundle.save_run_journal(art, run)
    keep = keeping(config)
    run.close(keep_dir=keep)
    report = getattr(run.janitor, "report", None)
    if not keep or (report is not None and report.retry()):
        return None  # nothing to keep, or the next sweep must still find it in the run root
    dest = bundle.keep_run_dir(run.dir, bundle.kept_root(art))
    if dest is not None:
        print(f"reconverge: kept run dir {dest} (--reconverge-keep)", file=sys.stderr)
    return dest


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Write the session's report page from the saved journals and the verdict rows."""
    if hasattr(config, "workerinput"):
        return
    art = _artifacts(config)
    if art is not None and (art / "journal").is_dir():
        _session_report(terminalreporter, config, art)
    if config.getoption("reconverge_keep", default=False):
        root = _kept_root(art)
        since = config.stash.get(_STARTED, 0.0)
        kept = [p for p in sorted(root.glob("r*")) if p.is_dir() and p.stat().st_mtime >= since - 1]
        for p in kept:
            terminalreporter.write_line(f"reconverge: kept run dir {p} (reconverge report {p})")


def _kept_root(art: Path | None) -> Path:
    from harness.report import bundle

    return bundle.kept_root(art)


def _session_report(terminalreporter: Any, config: pytest.Config, art: Path) -> None:
    import json

    from harness.journal import merge
    from harness.pytest_plugin.verdicts import session_verdicts
    from harness.report import bundle, matrix_view

    records = merge.load(art)
    if not records:
        return
    verdicts = [v.to_dict() for v in session_verdicts(config)]
    meta = bundle.session_meta(config)
    meta["versions"] = bundle.versions(records)
    meta["title"] = f"session seed {meta['seed']}"
    links = {
        f"failure: {p.parent.name}": str(p.relative_to(art))
        for p in sorted((art / "failures").glob("*/report.html"))
    }
    (art / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    page = bundle.write_report(
        art,
        records,
        title=meta["title"],
        meta=meta,
        verdicts=verdicts,
        links=links,
        # the matrix plugin writes matrix.json after this hook; its cells are ready already
        matrix=matrix_view.from_config(config),
    )
    terminalreporter.write_line(f"reconverge report: {page} (trace: {art / 'trace.json'})")
