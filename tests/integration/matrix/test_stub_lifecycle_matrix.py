"""The stub shim's life cycle on every release a matrix asks for (a containerd_matrix case).

Without ``--reconverge-containerd`` it runs once on the session's containerd 1.6.20; with
``--reconverge-containerd=1.6.20,v2.1.5,v2.4.2`` once per release, each on that release's
own containerd (``harness.matrix.fixtures``). It declares no upstream behaviour (nothing is
expected to leak anywhere): its cells are the test outcome.
"""

from __future__ import annotations

import pytest

from harness.checks import leaks
from harness.matrix.fixtures import containerd, containerd_grpc_relay  # noqa: F401 (per release)
from harness.matrix.upstream import Upstream

pytestmark = pytest.mark.needs("containerd")

SMOKE = Upstream(reference="none: the stub's create/start/pause/resume/kill/delete", probes=())


@pytest.mark.containerd_matrix(SMOKE)
def test_stub_lifecycle(containerd_version, containerd, ctd_namespace, reconverge_run):  # noqa: F811
    ns, cid = ctd_namespace, "life"
    containerd.run_stub_task(ns, cid)
    assert containerd.task_status(ns, cid) == "RUNNING"
    containerd.ctr(ns, "task", "pause", cid)
    assert containerd.task_status(ns, cid) == "PAUSED"
    containerd.ctr(ns, "task", "resume", cid)
    assert containerd.task_status(ns, cid) == "RUNNING"
    containerd.remove_task(ns, cid)
    found = leaks.wait_until_clean(
        reconverge_run.dir, timeout=2.0, state_dir=containerd.state, namespace=ns
    )
    assert found == [], [str(f) for f in found]
    if containerd_version is not None:
        assert containerd_version.lstrip("v") in containerd.ctr(ns, "version")
