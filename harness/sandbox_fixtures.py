"""pytest fixtures for the sandbox reconciler suites (loaded by the reconverge plugin).

``sandbox_env`` gives a case its own containerd namespace, a toxiproxy proxy in front of
containerd's gRPC socket, and a factory for reconcilers (``sandbox_env.reconciler(bugs)``)
that talk through that proxy. Buggy variants leak shims on purpose; teardown reaps what the
case left (and journals it) so the next case and the run-level leak check start clean.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import journal
from harness.checks import leaks
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.reconciler.sandbox import ReconcilerHost, Timing
from harness.run import Run

FP = "io.containerd.runtime.v2.shim.failpoint."


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

    @property
    def run_dir(self) -> Path:
        return self.run.dir

    def reconciler(
        self, bugs: Iterable[str] = (), *, timing: Timing | None = None
    ) -> ReconcilerHost:
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
        return leaks.registry_entry(self.run_dir, self.namespace, sid)

    def leak(self, sids: Iterable[str] = ("sb",), *, timeout: float) -> Any:
        """The leak checker on this case's namespace, journaled (an ``Outcome``)."""
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
    """``Pause_after="1*delay(500)"`` -> ``{"…failpoint.Pause.after": "1*delay(500)"}``."""
    return {FP + k.replace("_", "."): v for k, v in terms.items()}


@pytest.fixture
def sandbox_env(
    containerd: Containerd,
    containerd_grpc_relay: str,
    reconverge_run: Run,
    toxiproxy: Any,
    sandbox_timing: Timing,
    request: pytest.FixtureRequest,
) -> Iterator[SandboxEnv]:
    nodeid = request.node.nodeid
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    ns = f"sb-{slug}-{hashlib.sha1(nodeid.encode()).hexdigest()[:6]}"
    proxy = toxiproxy.create("containerd", containerd_grpc_relay)
    store = reconverge_run.path("sandbox", mkdir=True) / f"{ns}.sqlite"
    env = SandboxEnv(containerd, reconverge_run, ns, proxy, sandbox_timing, store)
    yield env
    for host in reversed(env.hosts):
        with contextlib.suppress(Exception):
            host.close()
    _reap(env)


def _reap(env: SandboxEnv) -> None:
    """Kill what the case left in its namespace (deliberate leaks included), journaled."""
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
    with contextlib.suppress(Exception):
        for line in c.ctr(ns, "container", "ls", "-q").split():
            with contextlib.suppress(Exception):
                c.ctr(ns, "container", "delete", line)
