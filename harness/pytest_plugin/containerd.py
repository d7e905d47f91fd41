"""pytest fixtures for the containerd path (loaded by the reconverge plugin).

One private containerd per session (per xdist worker); every test gets its own namespace,
and what it leaves behind is reported when it ends: shims (registered, or found in /proc
without an entry), task processes whose shim died, sockets, bundles, tasks containerd
still lists and FIFO fds containerd holds beyond what it held before the test. The suites'
``sandbox_env`` runs its own check (``harness/pytest_plugin/sandbox.py``) before it reaps.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported where used: every pytest run imports this module (see __init__)
    from harness.checks import leaks
    from harness.providers.containerd import Containerd
    from harness.run import Run

LEAK_BUDGET_S = 1.0  # a clean teardown must be seen as clean within this


@pytest.fixture(scope="session")
def containerd(reconverge_run: Run) -> Iterator[Containerd]:
    """A private containerd 1.6.20 that launches the stub shim from the virtualenv."""
    from harness.providers.containerd import Containerd

    c = Containerd(reconverge_run).start()
    yield c
    c.stop()


def _pid(c: Containerd) -> int | None:
    """containerd's current pid (a test may restart it: ask each time, never cache)."""
    return c.proc.pid if c.proc else None


def _report(check: Callable[[], list[leaks.Finding]]) -> None:
    """Run a teardown leak check; fail the test on findings, or when it could not observe.

    An unanswered question (containerd gone, a shim that does not answer in time) is one
    line naming what did not answer — not a pass, and not a leak.
    """
    from harness.verdict import Unobservable

    try:
        found = check()
    except Unobservable as exc:
        pytest.fail(f"leak check could not observe: {exc}", False)
    if found:
        pytest.fail("leaked after the test:\n" + "\n".join(f"  {f}" for f in found), False)


@pytest.fixture
def ctd_namespace(
    request: pytest.FixtureRequest, containerd: Containerd, reconverge_run: Run
) -> Iterator[str]:
    """A containerd namespace unique to this test, checked for leaks when the test ends.

    The check runs after the test's own clean-up: a shim, orphaned task process, socket,
    bundle, containerd task or extra FIFO fd still there 1 s later fails the test, each
    finding naming the container id and this test. The FIFO baseline is taken here, before
    the test, because containerd may hold FIFOs for other namespaces that are not this
    test's doing.
    """
    from harness.checks import leaks

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:32].strip("-")
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    ns = f"t-{name}-{digest}"
    leaks.claim_namespace(reconverge_run.dir, ns, request.node.nodeid)
    pid = _pid(containerd)
    baseline = leaks.fifo_fds(pid) if pid else []
    yield ns
    _report(
        lambda: leaks.wait_until_clean(
            reconverge_run.dir,
            timeout=LEAK_BUDGET_S,
            state_dir=containerd.state,
            namespace=ns,
            test=request.node.nodeid,
            containerd_address=containerd.address,
            containerd_pid=_pid(containerd),
            fifo_baseline=baseline,
        )
    )


def _asks_for(request: pytest.FixtureRequest, name: str) -> bool:
    """The test function itself names ``name`` (not through another fixture)."""
    fn = getattr(request, "function", None)
    try:
        return fn is not None and name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@pytest.fixture(autouse=True)
def containerd_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that takes ``containerd`` without ``ctd_namespace`` is checked too.

    Its namespaces are unknown, so every namespace is checked and only what is new since
    the test started is reported (an earlier test's findings were that test's failure).
    Tests reaching containerd through another fixture (suites' ``sandbox_env``) are left
    to that fixture's own checks.
    """
    if not _asks_for(request, "containerd") or "ctd_namespace" in request.fixturenames:
        yield
        return
    from harness.checks import leaks
    from harness.providers.containerd import Containerd

    c = request.getfixturevalue("containerd")
    if not isinstance(c, Containerd):  # a module overrode the fixture with something else
        yield
        return
    run: Run = request.getfixturevalue("reconverge_run")
    test = request.node.nodeid
    pid = _pid(c)
    fifos = leaks.fifo_fds(pid) if pid else []
    common = dict(state_dir=c.state, test=test, containerd_address=c.address)
    before = leaks.find_leaks(run.dir, **common)  # type: ignore[arg-type]
    yield
    _report(
        lambda: leaks.wait_until_clean(
            run.dir,
            timeout=LEAK_BUDGET_S,
            ignore=before,
            containerd_pid=_pid(c),
            fifo_baseline=fifos,
            **common,
        )
    )
