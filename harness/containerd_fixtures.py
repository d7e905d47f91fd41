"""pytest fixtures for the containerd path (loaded by the reconverge plugin).

One private containerd per session (per xdist worker); every test gets its own namespace,
and its shims are checked for leaks when it ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from harness.providers.containerd import Containerd
from harness.run import Run


@pytest.fixture(scope="session")
def containerd(reconverge_run: Run) -> Iterator[Containerd]:
    """A private containerd 1.6.20 that launches the stub shim from the virtualenv."""
    c = Containerd(reconverge_run).start()
    yield c
    c.stop()


@pytest.fixture
def ctd_namespace(request: pytest.FixtureRequest) -> str:
    """A containerd namespace unique to this test."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"t-{name}"
