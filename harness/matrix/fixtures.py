"""Session containerd for a matrix release: a suite module imports these two fixtures.

``from harness.matrix.fixtures import containerd, containerd_grpc_relay`` in a suite module
makes that module's session containerd (and the 127.0.0.1 relay its proxies dial) follow
the case's ``containerd_version``; without a release (no ``--reconverge-containerd``) both
hand back the plugin's own fixtures, so the module runs exactly as before.

Why module-level copies and not an override in the plugin: a session fixture is cached per
definition, so the plugin's relay, once made for another module's containerd 1.6.20, would
be handed to a v2.1.5 case unchanged. These definitions belong to the importing module
alone, and follow the release because they depend on the (session-scoped, parametrised)
``containerd_version``: when the release changes, pytest tears them down and makes new ones.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.matrix import versions
from harness.providers.containerd import Containerd
from harness.run import Run


def _release(label: str | None) -> str | None:
    """The cached build a label needs, or None for the session's own containerd."""
    if label is None or versions.is_system(label):
        return None
    return label


@pytest.fixture(scope="session")
def containerd(
    request: pytest.FixtureRequest, containerd_version: str | None, reconverge_run: Run
) -> Iterator[Containerd]:
    """The session containerd (``None`` / the system's version) or a cached v2 release."""
    version = _release(containerd_version)
    if version is None:
        session = request.getfixturevalue("containerd")
        yield session
        if containerd_version is not None:
            _keep_log(request.config, session, containerd_version)
        return
    from harness import binaries
    from harness.checks import sandbox as chk
    from harness.pytest_plugin import skip_unless_strict

    if binaries.locate("containerd", version) is None:
        skip_unless_strict(
            request.config,
            f"containerd {version} not built "
            f"(fix: .venv/bin/reconverge build ensure containerd@{version})",
        )
    c = Containerd(reconverge_run, version=version, name=f"ctd-{version}").start()
    try:
        running = chk.containerd_version(c.address)
        if not versions.tags.parse(running).key == versions.tags.parse(version).key:
            raise AssertionError(f"asked for containerd {version}, the binary reports {running}")
        yield c
        _keep_log(request.config, c, version)
    finally:
        c.stop()


def _keep_log(config: pytest.Config, c: Containerd, label: str) -> None:
    """``<artifacts>/containerd/<release>.log``: the evidence (its "failed to shutdown shim
    task" lines, say) outlives the run directory, which is removed at the end."""
    art = config.getoption("reconverge_artifacts")
    log = getattr(c.proc, "log_path", None)
    if not art or log is None or not Path(log).is_file():
        return
    dest = Path(art) / "containerd" / f"{label}.log"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, dest)


@pytest.fixture(scope="session")
def containerd_grpc_relay(
    request: pytest.FixtureRequest, containerd_version: str | None, containerd: Containerd
) -> str:
    """containerd's gRPC socket on 127.0.0.1 for the release this module runs on."""
    if _release(containerd_version) is None:
        return str(request.getfixturevalue("containerd_grpc_relay"))
    return containerd.tcp_relay("grpc")
