"""pytest plugin (``pytest11`` entry point ``reconverge``): fixtures, options, verdicts.

Why a plugin and not a conftest: suites in other repositories get the same fixtures,
options and failure reports by installing the package. Real servers are session-scoped
(one run per pytest process, so one per xdist worker) and isolated per test (unique
proxy names, per-test failpoint state and seed), which keeps a suite fast without
letting one case's faults leak into the next.

On a failing test the plugin attaches the journal timeline of that test and the one
command that replays it (seed included), and copies the evidence to
``--reconverge-artifacts`` when given. Verdict rows, the table, ``verdicts.json`` and the
JUnit properties are :mod:`harness.pytest_plugin.verdicts`'.

Why every import of a harness module sits inside a function: this module and the fixture
modules it lists in ``pytest_plugins`` are imported by *every* pytest run of an environment
where reconverge is installed. Importing grpc, the protos or a reconciler here would make
each of those runs pay for them; ``tests/unit/harness/test_plugin_import_time.py`` holds the
line (no heavy module at start-up, under 40 ms).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from harness.providers.toxiproxy import Proxy, ToxiproxyServer
    from harness.run import Run

from harness.pytest_plugin.verdicts import VerdictRecorder

__all__ = [
    "KUBE_NEED_PREFIX",
    "VerdictRecorder",
    "case_seed",
    "repro_command",
    "session_seed",
    "session_versions",
    "skip_unless_strict",
    "strict",
]

_START = pytest.StashKey[float]()
_VERSIONS = pytest.StashKey[dict[str, str]]()


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
        config.option.reconverge_seed = int(env) if env else _random_seed()


def _random_seed() -> int:
    return int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF


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


# -- the session's header: seed, backends, versions ---------------------------------------

#: The servers whose versions the header and every verdict row name.
VERSIONED = ("toxiproxy", "containerd", "etcd", "kube-apiserver")


def component_versions() -> dict[str, str]:
    """reconverge, Python and each server a run would use, without starting anything.

    A build-cache binary's version is its ``manifest.json``'s; a binary found on PATH or by
    an environment override has no version until it runs, so its path and source stand in
    (the failure bundle's ``meta.json`` has the ``--version`` of what actually started).
    """
    import json
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from harness import binaries

    try:
        own = version("reconverge")
    except PackageNotFoundError:
        own = "unknown"
    out = {"reconverge": own, "python": platform.python_version()}
    for component in VERSIONED:
        try:
            found = binaries.locate(component)
        except Exception:  # an unreadable cache must not break the header
            found = None
        if found is None:
            out[component] = "missing"
            continue
        try:
            out[component] = str(
                json.loads((found.path.parent / "manifest.json").read_text())["version"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            out[component] = f"{found.path} ({found.source})"
    return out


def session_versions(config: pytest.Config) -> dict[str, str]:
    """:func:`component_versions`, once per session."""
    cached = config.stash.get(_VERSIONS, None)
    if cached is None:
        cached = config.stash[_VERSIONS] = component_versions()
    return cached


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Seed, strict mode, backends and versions: what a reader needs to replay the session."""
    kube = config.getoption("reconverge_kube", default=None) or "-"
    versions = ", ".join(f"{k} {v}" for k, v in session_versions(config).items())
    return [
        f"reconverge: seed {session_seed(config)}, strict {'on' if strict(config) else 'off'}, "
        f"toxiproxy backend {config.getoption('reconverge_backend')}, kube backend {kube}",
        f"reconverge versions: {versions}",
    ]


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


# -- failure reports ----------------------------------------------------------------------


def repro_command(config: pytest.Config, nodeid: str) -> str:
    """The one line that replays a case: same seed, settings and forced faults or bugs."""
    from harness.report import bundle

    return bundle.repro_line(config, nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    from harness.pytest_plugin import verdicts

    report = yield
    verdicts.publish(item, report)  # the row (may fail a suite case that recorded none)
    _strict_skip(item, report)
    if report.failed and call.when in ("call", "setup"):
        _attach_failure(item, report)
        verdicts.publish(item, report, again=True)  # now naming the bundle
    return report


def _strict_skip(item: pytest.Item, report: Any) -> None:
    """Under strict, a skipped *suite* case fails, whichever path skipped it.

    The plugin's own skip paths already fail under strict; this also catches a suite's own
    ``pytest.skip``, a ``skipif`` marker or a fixture that skips. Its verdict row (made just
    before) stays SKIPPED with the reason. An expected failure (xfail) is not a skip.
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
            from harness.pytest_plugin import verdicts

            bundle = _write_bundle(Path(art), item, run, records, report)
            verdicts.note_bundle(item, bundle)
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
    from harness.pytest_plugin import verdicts
    from harness.report import bundle

    verdict = verdicts.row_of(report)
    where = bundle.case_dir(root, _slug(item.nodeid, 80))
    failure = str(getattr(report, "longreprtext", "") or "")
    return bundle.write_case(where, item, run, records, verdict=verdict, failure=failure)


# -- path-specific fixtures -----------------------------------------------------------------
# Each component path keeps its fixtures in its own module; pytest loads them as plugins
# from here so installing the package is enough to get them.
pytest_plugins = [
    name
    for name in (
        "harness.pytest_plugin.verdicts",
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
