"""pytest plugin (``pytest11`` entry point ``reconverge``): fixtures, options, verdicts.

Why a plugin and not a conftest: suites in other repositories get the same fixtures,
options and failure reports by installing the package. Real servers are session-scoped
(one run per pytest process, so one per xdist worker) and isolated per test (unique
proxy names, per-test failpoint state and seed), which keeps a suite fast without
letting one case's faults leak into the next.

On a failing test the plugin attaches the journal timeline of that test and the one
command that replays it (seed included), and copies the evidence to
``--reconverge-artifacts`` when given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from harness.providers.toxiproxy import Proxy, ToxiproxyServer
    from harness.run import Run

_START = pytest.StashKey[float]()
_VERDICT_KEY = "reconverge_verdict"
_RECORDER = pytest.StashKey["VerdictRecorder"]()


# -- options, markers ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("reconverge", "reconverge fault-injection harness")
    g.addoption(
        "--reconverge-seed",
        type=int,
        default=None,
        help="seed of the run; fault schedules and failpoint probabilities derive from it",
    )
    g.addoption(
        "--reconverge-backend",
        default=os.environ.get("RECONVERGE_BACKEND", "process"),
        choices=("process", "container"),
        help="how toxiproxy runs: a local process (default) or a locally built container",
    )
    g.addoption(
        "--reconverge-artifacts",
        default=os.environ.get("RECONVERGE_ARTIFACTS"),
        help="directory for failure bundles (journal, timeline, logs) and verdicts.json",
    )
    g.addoption(
        "--reconverge-strict",
        action="store_true",
        default=os.environ.get("CI", "").lower() in ("1", "true", "yes"),
        help="a missing component fails the case instead of skipping it (default under CI)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*components): real components (toxiproxy, containerd, ...) or kube:<capability>",
    )
    config.addinivalue_line("markers", "suite: a fault-injection suite case with a verdict")
    # The controller picks the seed so every xdist worker shares it.
    if config.getoption("reconverge_seed") is None and not hasattr(config, "workerinput"):
        env = os.environ.get("RECONVERGE_SEED")
        config.option.reconverge_seed = int(env) if env else secrets.randbelow(2**31)


def session_seed(config: pytest.Config) -> int:
    """The seed every case of this session derives its own from."""
    seed = config.getoption("reconverge_seed")
    if seed is None:  # worker without a forwarded option
        seed = int(os.environ.get("RECONVERGE_SEED", "0"))
    return int(seed)


def case_seed(seed: int, nodeid: str) -> int:
    """A per-case seed that does not depend on which cases ran before it."""
    digest = hashlib.sha256(f"{seed}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# -- component availability --------------------------------------------------------------

_COMPONENT_CHECKS = {
    "toxiproxy": ("toxiproxy",),
    "containerd": ("containerd", "ctr"),
    "runc": ("runc",),
    "socat": ("socat",),
    "docker": ("docker", "dockerd"),
    "etcd": ("etcd",),
    "kube-apiserver": ("kube-apiserver",),
}


def strict(config: pytest.Config) -> bool:
    """``--reconverge-strict`` (on under CI): nothing may be skipped silently."""
    return bool(config.getoption("reconverge_strict"))


def skip_unless_strict(config: pytest.Config, reason: str) -> NoReturn:
    """Skip with ``reason`` — or fail with it under ``--reconverge-strict``.

    Every skip path of the harness goes through here: a case that cannot run is either
    visibly skipped (locally) or a failure (CI), never a silent pass.
    """
    if strict(config):
        pytest.fail(
            f"{reason} (--reconverge-strict: a skip would be a vacuous pass)", pytrace=False
        )
    pytest.skip(reason)


#: ``needs("kube:<capability>")`` names a capability of the Kubernetes backend; the kube
#: fixtures check it once the session's cluster exists (harness.pytest_plugin.kube).
KUBE_NEED_PREFIX = "kube:"


def _missing(component: str) -> str | None:
    from harness import binaries

    if component.startswith(KUBE_NEED_PREFIX):
        return None  # a backend capability, not a binary: checked against the cluster
    if component == "kind":  # docker, dockerd, kind and the node image (harness.kind.fixtures)
        from harness.kind.fixtures import kind_missing

        return kind_missing()
    for binary in _COMPONENT_CHECKS.get(component, (component,)):
        try:
            if binaries.locate(binary) is None:
                return f"{binary} is not installed (fix: ./ci/bootstrap)"
        except KeyError:
            return f"unknown component {component!r}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_START] = time.monotonic()
    for mark in item.iter_markers("needs"):
        for component in mark.args:
            why = _missing(component)
            if why:
                skip_unless_strict(item.config, f"needs {component}: {why}")


# -- the run and its providers -------------------------------------------------------------


@pytest.fixture(scope="session")
def reconverge_run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """The run owning every real server of this pytest process (one per xdist worker)."""
    from harness import run as run_mod

    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    r = run_mod.start(purpose="pytest", seed=session_seed(request.config), proc=f"pytest-{worker}")
    request.config.stash[_RUN] = r
    yield r
    from harness.report import plugin as report_plugin

    report_plugin.close_run(request.config, r)  # saves the journal, honours --reconverge-keep


_RUN = pytest.StashKey["Run"]()


@pytest.fixture(scope="session")
def toxiproxy_server(
    reconverge_run: Run, request: pytest.FixtureRequest
) -> Iterator[ToxiproxyServer]:
    """A real toxiproxy server for the session, on the backend chosen by option."""
    from harness.providers import toxiproxy

    server = toxiproxy.start(reconverge_run, request.config.getoption("reconverge_backend"))
    yield server
    server.stop()


class ProxyFactory:
    """Per-test proxies on the shared server; all are deleted when the test ends."""

    def __init__(self, server: ToxiproxyServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.created: list[Proxy] = []

    @property
    def client(self) -> Any:
        return self.server.client

    def create(self, name: str, upstream: str) -> Proxy:
        """A proxy named ``<test>-<name>`` forwarding to ``upstream`` (host:port)."""
        proxy = self.server.client.create(f"{self.prefix}-{name}", upstream)
        self.created.append(proxy)
        return proxy

    def cleanup(self) -> None:
        for proxy in reversed(self.created):
            try:
                proxy.destroy()
            except Exception:
                pass
        self.created.clear()


def _slug(nodeid: str, limit: int = 40) -> str:
    short = re.sub(r"[^A-Za-z0-9]+", "-", nodeid.split("::")[-1]).strip("-")
    h = hashlib.sha1(nodeid.encode()).hexdigest()[:6]
    return f"{short[:limit]}-{h}"


@pytest.fixture
def toxiproxy(
    toxiproxy_server: ToxiproxyServer, request: pytest.FixtureRequest
) -> Iterator[ProxyFactory]:
    """Create proxies for this test only: ``toxiproxy.create("echo", "127.0.0.1:port")``."""
    factory = ProxyFactory(toxiproxy_server, _slug(request.node.nodeid))
    yield factory
    factory.cleanup()


@pytest.fixture
def failpoints(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The ``failpoints`` module, seeded for this case and reset when it ends."""
    import failpoints as fp

    seed = case_seed(session_seed(request.config), request.node.nodeid)
    fp.seed(seed)
    # journal triggers even when the test did not start a run of its own
    from harness import journal

    journal.sink._install_failpoint_observer()
    yield fp
    fp.reset()


# -- verdicts ------------------------------------------------------------------------------
# The model and its rules live in harness.verdict; here they meet pytest: one recorder per
# case, a row for every suite case whatever happened to it, and the table.


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
        _set_verdict(self.item.user_properties, v)
        journal.emit(
            "verdict", str(outcome), suite=suite, case=case, variant=variant, symptom=symptom
        )
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


def _set_verdict(props: list[tuple[str, object]], v: Any) -> None:
    props[:] = [(k, val) for k, val in props if k != _VERDICT_KEY]
    props.append((_VERDICT_KEY, json.dumps(v.to_dict())))


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> VerdictRecorder:
    """Record this case's verdict for the table ``./ci/suites`` prints."""
    rec = VerdictRecorder(request.node)
    request.node.stash[_RECORDER] = rec
    return rec


def _row_without_verdict(item: pytest.Item, outcome: str, reason: str) -> Any:
    """A row for a suite case that recorded nothing (skipped, errored, or forgot to)."""
    from harness.verdict import Verdict

    callspec = getattr(item, "callspec", None)
    ident = callspec.id if callspec is not None else ""
    variant = "buggy" if "buggy" in ident else "fixed" if "fixed" in ident else "-"
    suite = Path(str(item.fspath)).stem.removeprefix("test_")
    name = getattr(item, "originalname", item.name)
    return Verdict(
        suite, name, variant, "-", outcome, reason[:200], 0.0, nodeid=item.nodeid, reason=reason
    )


def _note_suite_report(item: pytest.Item, report: Any) -> None:
    """Give every suite case a row: SKIPPED / ERROR when it recorded no verdict.

    A suite case that *passed* without recording a verdict is turned into a failure: a
    green case that concluded nothing is exactly the vacuous pass the verdict model exists
    to prevent.
    """
    if item.get_closest_marker("suite") is None:
        return
    has = any(k == _VERDICT_KEY for k, _ in report.user_properties)
    if report.skipped and not has and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _set_verdict(report.user_properties, _row_without_verdict(item, "SKIPPED", reason))
    elif report.failed and not has:
        what = (
            "setup" if report.when == "setup" else "teardown" if report.when == "teardown" else ""
        )
        crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", "")
        msg = getattr(report, "longreprtext", "").strip().splitlines()
        text = crash.splitlines()[0] if crash else msg[-1] if msg else "failed"
        reason = f"{what + ' ' if what else ''}error: {text}"
        _set_verdict(report.user_properties, _row_without_verdict(item, "ERROR", reason))
    elif report.when == "call" and report.passed and not has:
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: a suite case must record a verdict (it recorded none)"
        _set_verdict(
            report.user_properties,
            _row_without_verdict(item, "ERROR", "the case recorded no verdict"),
        )


def _strict_skip(item: pytest.Item, report: Any) -> None:
    """Under strict, a skipped *suite* case fails, whichever path skipped it.

    The plugin's own skip paths already fail under strict; this also catches a suite's own
    ``pytest.skip``, a ``skipif`` marker or a fixture that skips. Its verdict row (made by
    :func:`_note_suite_report` just before) stays SKIPPED with the reason. An expected
    failure (xfail) is not a skip.
    """
    if not report.skipped or hasattr(report, "wasxfail") or not strict(item.config):
        return
    if item.get_closest_marker("suite") is None:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid}: skipped under --reconverge-strict (a skipped suite case is a vacuous "
        f"pass): {reason}"
    )


def verdicts_from(reports: list[Any]) -> list[Any]:
    """Verdicts carried by test reports (works across xdist workers); last one per case."""
    from harness.verdict import Verdict

    by_node: dict[str, Any] = {}
    for rep in reports:
        for key, value in getattr(rep, "user_properties", ()):
            if key == _VERDICT_KEY:
                v = Verdict.from_dict(json.loads(str(value)))
                prev = by_node.get(v.nodeid or rep.nodeid)
                # a teardown ERROR must not hide the call's verdict, but a later one may replace
                if prev is None or v.outcome != "ERROR" or prev.outcome in ("SKIPPED",):
                    by_node[v.nodeid or rep.nodeid] = v
    return list(by_node.values())


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
    reports = [
        r
        for key in ("passed", "failed", "error", "skipped")
        for r in terminalreporter.stats.get(key, [])
    ]
    verdicts = verdicts_from(reports)
    if not verdicts:
        return
    terminalreporter.write_sep("=", "reconverge verdicts")
    terminalreporter.write_line(render_verdicts(verdicts))
    times = sorted(v.seconds for v in verdicts)
    median = times[len(times) // 2]
    terminalreporter.write_line(
        f"{len(verdicts)} case(s); median {median:.1f} s per case; seed {session_seed(config)}"
    )
    out = config.getoption("reconverge_artifacts")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "verdicts.json").write_text(
            json.dumps([v.to_dict() for v in verdicts], indent=1)
        )


# -- failure reports ----------------------------------------------------------------------


def repro_command(config: pytest.Config, nodeid: str) -> str:
    """The one line that replays a case: same seed, settings and forced faults or bugs."""
    from harness.report import bundle

    return bundle.repro_line(config, nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _note_suite_report(item, report)
    _strict_skip(item, report)
    if report.failed and call.when in ("call", "setup"):
        _attach_failure(item, report)
    return report


def _attach_failure(item: pytest.Item, report: Any) -> None:
    run = item.config.stash.get(_RUN, None)
    lines = []
    if run is not None and not run.closed:
        from harness.journal import merge
        from harness.report import timeline

        start = item.stash.get(_START, 0.0)
        records = merge.since(merge.load(run.dir), start)
        lines.append(timeline.render(records, tail=40, title=f"timeline of {item.nodeid}"))
        art = item.config.getoption("reconverge_artifacts")
        if art:
            bundle = _write_bundle(Path(art), item, run, records, report)
            lines.append(f"artifacts: {bundle} (reconverge report {bundle})")
        if item.config.getoption("reconverge_keep", default=False):
            from harness.report import plugin as report_plugin

            kept = report_plugin.kept_path(item.config, run)
            lines.append(f"run dir: kept as {kept} at the end of the session (--reconverge-keep)")
    lines.append(f"replay: {repro_command(item.config, item.nodeid)}")
    report.sections.append(("reconverge", "\n".join(lines)))


def _write_bundle(
    root: Path, item: pytest.Item, run: Run, records: list[Any], report: Any = None
) -> Path:
    """``<artifacts>/failures/<case>/``: journal, timeline, report.html, repro, meta, logs."""
    from harness.report import bundle

    rows = [v for k, v in getattr(report, "user_properties", ()) if k == _VERDICT_KEY]
    verdict = json.loads(str(rows[-1])) if rows else None
    where = bundle.case_dir(root, _slug(item.nodeid, 80))
    failure = str(getattr(report, "longreprtext", "") or "")
    return bundle.write_case(where, item, run, records, verdict=verdict, failure=failure)


# -- path-specific fixtures -----------------------------------------------------------------
# Each component path keeps its fixtures in its own module; pytest loads them as plugins
# from here so installing the package is enough to get them.
pytest_plugins = [
    name
    for name in (
        "harness.pytest_plugin.containerd",
        "harness.pytest_plugin.kube",
        "harness.pytest_plugin.sandbox",
        "harness.pytest_plugin.cri",
        "harness.kind.fixtures",
        "harness.report.plugin",
        "harness.matrix.plugin",
    )
    if importlib.util.find_spec(name) is not None
]
