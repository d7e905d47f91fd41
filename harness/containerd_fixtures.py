"""pytest fixtures for the containerd path (loaded by the reconverge plugin).

One private containerd per session (per xdist worker); every test gets its own namespace,
and its shims are checked for leaks when it ends.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from harness.checks import leaks
from harness.providers.containerd import Containerd
from harness.run import Run


@pytest.fixture(scope="session")
def containerd(reconverge_run: Run) -> Iterator[Containerd]:
    """A private containerd 1.6.20 that launches the stub shim from the virtualenv."""
    c = Containerd(reconverge_run).start()
    yield c
    c.stop()


@pytest.fixture
def ctd_namespace(
    request: pytest.FixtureRequest, containerd: Containerd, reconverge_run: Run
) -> Iterator[str]:
    """A containerd namespace unique to this test, checked for leaks when the test ends.

    The check runs after the test's own clean-up: a shim, socket, bundle, containerd task
    or stdio FIFO still there 1 s later fails the test, each finding naming the container
    id and this test.
    """
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:32].strip("-")
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    ns = f"t-{name}-{digest}"
    yield ns
    found = leaks.wait_until_clean(
        reconverge_run.dir,
        timeout=1.0,
        state_dir=containerd.state,
        namespace=ns,
        test=request.node.nodeid,
        containerd_address=containerd.address,
        containerd_pid=containerd.proc.pid if containerd.proc else None,
    )
    if found:
        pytest.fail("leaked after the test:\n" + "\n".join(f"  {f}" for f in found), False)
