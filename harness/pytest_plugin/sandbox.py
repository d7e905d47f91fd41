"""pytest fixtures for the sandbox reconciler suites (loaded by the reconverge plugin).

``sandbox_env`` gives a case its own containerd namespace, a toxiproxy proxy in front of
containerd's gRPC socket, and a factory for reconcilers (``sandbox_env.reconciler(bugs)``)
that talk through that proxy.

Teardown runs the leak detector on the case's namespace **before anything is reaped**
(containers containerd still lists are the case's live sandboxes, not leaks): a fixed
variant (param id starting with ``fixed``) fails on any finding, each line naming the
leaked shim, its pid, the container and the test; a buggy variant's deliberate leak is
journaled (``teardown``/``deliberate_leak``). Then everything is reaped, and what the reap
could not remove fails the case too: the next case must start clean.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.pytest_plugin.containerd import LEAK_BUDGET_S

if TYPE_CHECKING:  # imported where used: every pytest run imports this module, and the
    # reconciler pulls grpc and the protos (see harness/pytest_plugin/__init__.py)
    from harness.checks import leaks
    from harness.providers.containerd import Containerd
    from harness.reconciler.sandbox import ReconcilerHost, Timing
    from harness.run import Run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("reconverge").addoption(
        "--reconverge-sandbox-time-scale",
        type=float,
        default=float(os.environ.get("RECONVERGE_SANDBOX_TIME_SCALE", "0.05")),
        help="multiply every sandbox-reconciler duration (60 s stuck-PAUSING threshold, ...)",
    )


@pytest.fixture(scope="session")
def containerd_grpc_relay(containerd: Containerd) -> str:
    """containerd's gRPC socket on 127.0.0.1 (a socat relay), for per-test proxies."""
    return containerd.tcp_relay("grpc")


@pytest.fixture
def sandbox_timing(request: pytest.FixtureRequest) -> Timing:
    from harness.reconciler.sandbox import Timing

    return Timing().scaled(request.config.getoption("reconverge_sandbox_time_scale"))


@dataclass
class SandboxEnv:
    """Everything one case needs; ``reconciler()`` starts one behind the case's proxy."""

    containerd: Containerd
    run: Run
    namespace: str
    proxy: Any
    timing: Timing
    store: Path
    hosts: list[ReconcilerHost] = field(default_factory=list)
    #: containerd's FIFO fds before the case (the teardown leak check counts beyond them)
    fifo_baseline: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.run.dir

    def reconciler(
        self, bugs: Iterable[str] = (), *, timing: Timing | None = None
    ) -> ReconcilerHost:
        from harness.providers.containerd import STUB_RUNTIME
        from harness.reconciler.sandbox import ReconcilerHost

        bugs = set(bugs) | forced_bugs()
        host = ReconcilerHost(
            target=self.proxy.listen,
            namespace=self.namespace,
            state_dir=self.containerd.state,
            store_path=self.store,
            runtime_name=STUB_RUNTIME,
            bugs=bugs,
            timing=timing or self.timing,
        )
        self.hosts.append(host)
        return host.start()

    def shim_entry(self, sid: str) -> dict[str, Any]:
        from harness.checks import leaks

        return leaks.registry_entry(self.run_dir, self.namespace, sid)

    def leak(self, sids: Iterable[str] = ("sb",), *, timeout: float) -> Any:
        """The leak checker on this case's namespace, journaled (a ``harness.verdict.Finding``)."""
        from harness.checks import sandbox as chk

        c = self.containerd
        outcome = chk.leak(
            self.run_dir,
            address=c.address,
            state_dir=c.state,
            namespace=self.namespace,
            sids=list(sids),
            timeout=timeout,
        )
        return chk.note(outcome, "leak")

    def shim_failpoint(self, sid: str, name: str, spec: str) -> None:
        """Set a failpoint in the running shim of ``sid`` (its control socket)."""
        import failpoints
        from harness import journal

        control = self.shim_entry(sid).get("control", "")
        failpoints.ControlClient(f"unix:{control}").set(name, spec)
        journal.emit("harness", "shim_failpoint", id=sid, point=name, spec=spec)


def forced_bugs() -> set[str]:
    """Switches forced on for every reconciler by ``RECONVERGE_SANDBOX_BUGS`` (comma list).

    Why: "a fixed variant with its fix disabled by hand" without editing code — the way to
    see what a failing case prints (timeline, repro line) and that the repro reproduces it.
    """
    raw = os.environ.get("RECONVERGE_SANDBOX_BUGS", "")
    return {b.strip() for b in raw.split(",") if b.strip()}


def failpoint_annotations(**terms: str) -> dict[str, str]:
    """``Pause_after="1*delay(500)"`` -> ``{"…failpoint.Pause.after": "1*delay(500)"}``.

    The key prefix is :data:`failpoints.sources.ANNOTATION_PREFIX`, the one the shim reads.
    """
    from failpoints.sources import ANNOTATION_PREFIX

    return {ANNOTATION_PREFIX + k.replace("_", "."): v for k, v in terms.items()}


@pytest.fixture
def sandbox_env(
    containerd: Containerd,
    containerd_grpc_relay: str,
    reconverge_run: Run,
    toxiproxy: Any,
    sandbox_timing: Timing,
    request: pytest.FixtureRequest,
) -> Iterator[SandboxEnv]:
    from harness.checks import leaks

    nodeid = request.node.nodeid
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    ns = f"sb-{slug}-{hashlib.sha1(nodeid.encode()).hexdigest()[:6]}"
    proxy = toxiproxy.create("containerd", containerd_grpc_relay)
    store = reconverge_run.path("sandbox", mkdir=True) / f"{ns}.sqlite"
    env = SandboxEnv(containerd, reconverge_run, ns, proxy, sandbox_timing, store)
    leaks.claim_namespace(reconverge_run.dir, ns, nodeid)
    pid = containerd.proc.pid if containerd.proc else None
    env.fifo_baseline = leaks.fifo_fds(pid) if pid else []
    yield env
    for host in reversed(env.hosts):
        with contextlib.suppress(Exception):
            host.close()
    problems = teardown_leak_check(
        env, test=nodeid, variant=variant_of(request.node), strict=_strict(request)
    )
    if problems:
        _amend_verdict(request.node, problems[0])
        pytest.fail("\n".join(problems), pytrace=False)


def _amend_verdict(item: pytest.Item, problem: str) -> None:
    """A fixed case recorded CONVERGED, then leaked: its row must not say CONVERGED.

    Re-records the case's verdict (through the ``verdict`` fixture's public ``record``) as
    DIVERGED with the first leak — or INCONCLUSIVE when the check could not observe —
    keeping its fault, fire counts and findings.
    """
    recorder = (getattr(item, "funcargs", None) or {}).get("verdict")
    v = getattr(recorder, "value", None)
    if v is None or v.variant != "fixed" or v.outcome != "CONVERGED":
        return
    if problem.startswith(LEAKED):
        outcome, first = "DIVERGED", f"leaked at teardown: {problem.splitlines()[1].strip()}"
    elif problem.startswith(UNOBSERVED):
        outcome, first = "INCONCLUSIVE", problem
    else:
        return  # the reap's own failure is the harness's, not the case's verdict
    recorder.record(
        suite=v.suite,
        case=v.case,
        variant=v.variant,
        fault=v.fault,
        outcome=outcome,
        symptom=first,
        fired=v.fired,
        findings=[
            *v.findings,
            {
                "check": "teardown leaks",
                "ok": False,
                "observed": outcome == "DIVERGED",
                "symptom": first[:200],
            },
        ],
        reason=problem.splitlines()[0],
        versions=v.versions,
    )


def variant_of(item: pytest.Item) -> str:
    """``fixed`` / ``buggy`` from the case's param id (``fixed``, ``buggy-<switch>``…)."""
    callspec = getattr(item, "callspec", None)
    ident = callspec.id if callspec is not None else ""
    if ident.startswith("fixed"):
        return "fixed"
    if ident.startswith("buggy"):
        return "buggy"
    return "-"


def _strict(request: pytest.FixtureRequest) -> bool:
    try:
        return bool(request.config.getoption("reconverge_strict"))
    except ValueError:
        return False


def teardown_leak_check(
    env: SandboxEnv, *, test: str, variant: str, strict: bool = False
) -> list[str]:
    """Leak-check the case's namespace, reap it, check the reap; the teardown errors to raise.

    Before anything is reaped: the tasks containerd lists are the case's live sandboxes
    (known); every other shim, daemon, task process, bundle or FIFO is a leak — a failure
    for a fixed variant, journaled evidence for a buggy one. A check that could not observe
    (containerd or a shim did not answer) fails a fixed variant under ``strict`` and is
    journaled either way. After the reap, anything left is a failure whatever the variant.
    """
    from harness import journal
    from harness.checks import leaks
    from harness.verdict import Unobservable

    c, ns = env.containerd, env.namespace
    problems: list[str] = []
    found: list[leaks.Finding] = []
    pid = c.proc.pid if c.proc else None
    try:
        live = set(leaks.containerd_tasks(c.address, ns, timeout=2 * LEAK_BUDGET_S))
        found = leaks.wait_until_clean(
            env.run_dir,
            timeout=LEAK_BUDGET_S,
            state_dir=c.state,
            namespace=ns,
            known_tasks=live,
            test=test,
            containerd_pid=pid,
            fifo_baseline=env.fifo_baseline,
        )
    except Unobservable as exc:
        journal.emit("teardown", "leak_check_unobservable", test=test, reason=str(exc))
        if variant == "fixed" and strict:
            problems.append(f"{UNOBSERVED}: {exc}")
    if found:
        event = "deliberate_leak" if variant == "buggy" else "leak"
        for f in found:
            journal.emit(
                "teardown",
                event,
                test=test,
                kind=f.kind,
                namespace=f.namespace,
                id=f.container_id,
                pid=f.pid,
                latency_ms=round((f.latency or 0.0) * 1000, 1),
                evidence=f.evidence,
            )
        if variant != "buggy":
            problems.append(
                f"{variant} variant leaked (found at teardown, before the reap):\n"
                + "\n".join(f"  {f}" for f in found)
            )
    _reap(env, found)
    try:
        left = leaks.wait_until_clean(
            env.run_dir,
            timeout=REAP_BUDGET_S,
            state_dir=c.state,
            namespace=ns,
            test=test,
            containerd_address=c.address,
        )
    except Unobservable as exc:
        left = []
        journal.emit("teardown", "reap_check_unobservable", test=test, reason=str(exc))
    if left:
        problems.append(
            "teardown could not reap (the next case would not start clean):\n"
            + "\n".join(f"  {f}" for f in left)
        )
    return problems


#: First words of the teardown errors (and what the verdict row becomes for each).
LEAKED = "fixed variant leaked"
UNOBSERVED = "leak check at teardown could not observe"

#: How long the reap may take to show as clean (ctr deletes, shims exiting after Shutdown).
REAP_BUDGET_S = 3.0


def _reap(env: SandboxEnv, found: Collection[leaks.Finding] = ()) -> None:
    """Kill what the case left in its namespace (deliberate leaks included), journaled."""
    from harness.checks import leaks

    c, ns = env.containerd, env.namespace
    with contextlib.suppress(Exception):
        for line in c.ctr(ns, "task", "ls", "-q").split():
            with contextlib.suppress(Exception):
                c.ctr(ns, "task", "kill", "-s", "SIGKILL", line)
            with contextlib.suppress(Exception):
                c.ctr(ns, "task", "delete", "-f", line)
    for e in leaks.registry(env.run_dir):
        if e.get("namespace") == ns:
            leaks.reap(e)
    leaks.reap_findings(found)
    with contextlib.suppress(Exception):
        for line in c.ctr(ns, "container", "ls", "-q").split():
            with contextlib.suppress(Exception):
                c.ctr(ns, "container", "delete", line)
