"""pytest fixtures for real containerd CRI (2.x from the build cache) with the stub shim.

``cri_containerd(version)`` starts a private containerd 2.x with the CRI plugin on, the stub
as the default runtime handler and a locally built sandbox image imported; teardown reaps
any shim the case leaked on purpose, then stops containerd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported where used: every pytest run imports this module
    from harness.providers.containerd import Containerd
    from harness.providers.cri_client import CRIClient
    from harness.run import Run


@dataclass
class CRIContainerd:
    """A containerd 2.x with CRI, and a client for it."""

    version: str
    containerd: Containerd
    client: CRIClient


@pytest.fixture
def cri_containerd(
    reconverge_run: Run, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], CRIContainerd]]:
    """Factory: ``cri_containerd("v2.1.4")`` -> a started containerd with CRI."""
    from harness import binaries
    from harness.providers import sandbox_image
    from harness.providers.containerd import Containerd
    from harness.providers.cri_client import CRIClient

    started: list[CRIContainerd] = []

    def make(version: str) -> CRIContainerd:
        if binaries.locate("containerd", version) is None:
            fix = f".venv/bin/reconverge build containerd@{version}"
            why = f"containerd {version} not built (fix: {fix})"
            if request.config.getoption("reconverge_strict"):
                pytest.fail(why, pytrace=False)
            pytest.skip(why)
        c = Containerd(
            reconverge_run,
            version=version,
            name=f"cri-{version}",
            cri_sandbox_image=sandbox_image.NAME,
        ).start()
        sandbox_image.ensure(c)
        env = CRIContainerd(version, c, CRIClient(c.address))
        started.append(env)
        return env

    yield make
    for env in started:
        env.client.close()
        _reap(reconverge_run, env.containerd)
        env.containerd.stop()


def _reap(run: Run, c: Containerd) -> None:
    """Kill shims (and their tasks) of this containerd that outlived the case."""
    from harness.checks import leaks

    for e in leaks.registry(run.dir):
        if e.get("containerd_address") == str(c.address):
            leaks.reap(e)
