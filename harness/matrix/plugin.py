"""pytest hooks of the version matrix: ``--reconverge-containerd=1.6.20,v2.1.4,v2.1.5``.

A case that runs on a real containerd declares itself matrix-capable with
``@pytest.mark.containerd_matrix(Upstream(...))`` (the observed upstream behaviour per
release and its reference, :mod:`harness.matrix.upstream`) and takes its release from the
``containerd_version`` fixture (or ``containerd_release``, which also says which variant
the release calls for). With the option, every such case runs once per release the case
applies to; without it, a case runs on its declared ``default`` releases, or — when it
declares none — unparametrised on the session's containerd, exactly as before.

Why the release is a *session-scoped* parameter: seed c's containerd is a session fixture
(:mod:`harness.matrix.fixtures`); pytest groups the cases by release and starts each
release's containerd once.

After each case, a cell (case, release, verdict, observed vs declared behaviour) goes into
the report's properties; the terminal summary prints the release x case table and the
behaviour changes, and ``--reconverge-artifacts`` gets ``matrix.json``. A probe variant
whose verdict shows the declared (or an undeclared) upstream behaviour passes — a buggy
reconciler that is MISSED on a release that does not leak is that release's behaviour,
not a failure; one that contradicts its declaration fails with both behaviours named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ReconvergeError
from harness.matrix import table, upstream, versions

MARKER = "containerd_matrix"
PARAM = "containerd_version"
CELL_KEY = "reconverge_matrix_cell"
_VERDICT_KEY = "reconverge_verdict"  # harness.pytest_plugin's row property (public shape)
_LABELS = pytest.StashKey[list[str]]()
_CELLS = pytest.StashKey[dict[str, table.Cell]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("reconverge").addoption(
        "--reconverge-containerd",
        default=None,
        metavar="VERSIONS",
        help="run every containerd_matrix case once per release, e.g. 1.6.20,v2.1.4,v2.1.5 "
        "(1.x: the system containerd; v2 tags: built from the module proxy into the cache)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(upstream): a case on a real containerd, run per release with "
        "--reconverge-containerd; upstream: harness.matrix.upstream.Upstream",
    )
    config.stash[_CELLS] = {}
    config.pluginmanager.register(_Cells(config.stash[_CELLS]), "reconverge-matrix-cells")
    raw = config.getoption("reconverge_containerd")
    if raw:
        try:
            labels = versions.parse_list(raw)
            for label in labels:
                versions.build_version(label)  # 1.x must be the system's
        except ReconvergeError as exc:
            raise pytest.UsageError(
                f"--reconverge-containerd: {exc.one_line().removeprefix('reconverge: ')}"
            ) from None
        config.stash[_LABELS] = labels


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the releases the run needs once, before any case (controller only)."""
    config = session.config
    labels = config.stash.get(_LABELS, None)
    if not labels or hasattr(config, "workerinput") or not versions.missing(labels):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    try:
        if capture is not None:
            with capture.global_and_fixture_disabled():
                versions.ensure(labels)
        else:
            versions.ensure(labels)
    except ReconvergeError as exc:
        pytest.exit(exc.one_line(), returncode=exc.exit_code)


def _upstream(node: Any) -> upstream.Upstream | None:
    mark = node.get_closest_marker(MARKER)
    if mark is None:
        return None
    return upstream.from_marker(mark.args, mark.kwargs)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise a matrix case by release, after its own ``parametrize`` marks so its
    id still starts with the variant (``fixed-v2.1.5``: the sandbox fixtures read it)."""
    up = _upstream(metafunc.definition)
    if up is None:
        return
    if PARAM not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: a {MARKER} case must take {PARAM} "
            "(or containerd_release, or harness.matrix.fixtures' containerd)"
        )
    labels = metafunc.config.stash.get(_LABELS, None)
    chosen = [v for v in (labels if labels is not None else list(up.default)) if up.applies(v)]
    if labels is None and not chosen:
        return  # no default releases: the session's containerd, unparametrised
    by_release = "containerd_release" in metafunc.fixturenames
    metafunc.parametrize(
        PARAM,
        chosen,
        indirect=True,
        scope="session",
        ids=[up.param_id(v) if by_release else v for v in chosen],
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A matrix case none of the asked releases applies to is deselected (an n/a cell)."""
    if config.stash.get(_LABELS, None) is None:
        return
    gone = [
        i
        for i in items
        if i.get_closest_marker(MARKER) is not None
        and PARAM not in getattr(getattr(i, "callspec", None), "params", {})
    ]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = [i for i in items if i not in gone]


@pytest.fixture(scope="session")
def containerd_version(request: pytest.FixtureRequest) -> str | None:
    """The case's containerd release label (``1.6.20``, ``v2.1.5``), or None (session default)."""
    return getattr(request, "param", None)


@dataclass(frozen=True)
class Release:
    """A release as a case sees it: the label, its declaration, the variant it calls for."""

    label: str
    upstream: upstream.Upstream

    @property
    def declared(self) -> str | None:
        return self.upstream.expect(self.label)

    @property
    def variant(self) -> str:
        return self.upstream.variant(self.label)

    @property
    def buggy(self) -> bool:
        return self.variant == "buggy"


@pytest.fixture
def containerd_release(request: pytest.FixtureRequest, containerd_version: str | None) -> Release:
    """The release of a version-driven case (seed b CRI): which variant it runs."""
    up = _upstream(request.node)
    if up is None or containerd_version is None:
        raise ReconvergeError(f"{request.node.nodeid}: containerd_release needs a {MARKER} release")
    return Release(containerd_version, up)


# -- cells --------------------------------------------------------------------------------


def _case_label(item: pytest.Item, label: str, up: upstream.Upstream) -> str:
    """The row: the node id without the release part of its parameter id."""
    mid = up.param_id(label) if "containerd_release" in item.fixturenames else label
    name = item.name
    for old, new in ((f"[{mid}]", ""), (f"-{mid}]", "]"), (f"[{mid}-", "["), (f"-{mid}-", "-")):
        if old in name:
            name = name.replace(old, new, 1)
            break
    return f"{Path(str(item.fspath)).name}::{name}"


def _row(report: pytest.TestReport) -> dict[str, Any] | None:
    rows = [v for k, v in report.user_properties if k == _VERDICT_KEY]
    return json.loads(str(rows[-1])) if rows else None


def _stamp_row(report: pytest.TestReport, label: str) -> dict[str, Any] | None:
    """Every verdict row of a matrix case names its release (``versions.containerd_version``)."""
    row = _row(report)
    if row is None:
        return None
    row.setdefault("versions", {})["containerd_version"] = label
    report.user_properties[:] = [
        (k, json.dumps(row) if k == _VERDICT_KEY else v) for k, v in report.user_properties
    ]
    return row


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    params = getattr(getattr(item, "callspec", None), "params", {})
    up = _upstream(item)
    label = params.get(PARAM)
    if up is None or label is None:
        return report
    row = _stamp_row(report, label)
    if not any(k == "containerd_version" for k, _ in report.user_properties):
        report.user_properties.append(("containerd_version", label))
    declared = up.expect(label)
    behaviour = upstream.observed(row, up.probes) if row else None
    outcome = row["outcome"] if row else report.outcome.upper()
    cell = table.Cell(
        _case_label(item, label, up),
        label,
        outcome,
        behaviour,
        declared,
        up.reference,
        item.nodeid,
    )
    judged = cell.judgement
    if call.when == "call" and behaviour is not None:
        if report.failed and judged.acceptable and outcome == "MISSED":
            # the buggy probe saw a release that does not leak: that release's behaviour
            report.outcome = "passed"
            report.longrepr = None
        elif judged.relation == "differs":
            report.sections.append(
                (
                    "reconverge matrix",
                    f"{label}: observed {behaviour}, declared {declared} "
                    f"({up.reference}) — a behaviour change against the declaration",
                )
            )
            if report.passed:
                report.outcome = "failed"
                report.longrepr = (
                    f"{item.nodeid}: containerd {label} {behaviour}, but the case declares it "
                    f"{declared} ({up.reference}); re-observe and update the declaration"
                )
    report.user_properties.append((CELL_KEY, json.dumps(cell.to_dict())))
    return report


class _Cells:
    """Keeps the latest cell of every case; a ``logreport`` hook runs on the controller
    under xdist too, where the worker's report properties arrive."""

    def __init__(self, store: dict[str, table.Cell]) -> None:
        self.store = store

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = [v for k, v in report.user_properties if k == CELL_KEY]
        if found:
            data = json.loads(str(found[-1]))
            self.store[report.nodeid] = table.Cell(
                **{k: data[k] for k in table.Cell.__dataclass_fields__}
            )


def cells(config: pytest.Config) -> list[table.Cell]:
    """Every matrix cell this session recorded."""
    return list(config.stash.get(_CELLS, {}).values())


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(
    terminalreporter: Any, exitstatus: int, config: pytest.Config
) -> Iterator[None]:
    yield
    labels = config.stash.get(_LABELS, None)
    found = cells(config)
    if not found or labels is None:
        return  # without the option a run's output stays what it was before the matrix
    terminalreporter.write_sep("=", "reconverge containerd matrix")
    terminalreporter.write_line(table.summary(found, labels))
    out = config.getoption("reconverge_artifacts")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        doc = {
            "versions": labels,
            "cells": [c.to_dict() for c in found],
            "changes": [ch.text() for ch in table.changes(found)],
        }
        (Path(out) / "matrix.json").write_text(json.dumps(doc, indent=1))
