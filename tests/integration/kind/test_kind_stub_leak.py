"""Failpoint annotations reach the stub through kubelet and CRI: a pod whose stub fails
``Shutdown`` leaves its shims alive on the node's containerd 1.6.20 after the pod is
deleted (seed c's leak, via a real kubelet), attributed to the pod; the same pod without the
failpoint leaves nothing."""

from __future__ import annotations

import os

import pytest

from failpoints.sources import ANNOTATION_PREFIX
from harness import run as run_mod
from harness.providers.kube.api import PODS
from harness.providers.kube.kind import KindProvider, smoke_pod
from harness.pytest_plugin import skip_unless_strict
from harness.wait import wait_for

pytestmark = [
    pytest.mark.needs("docker"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.timeout(600),
]

SHUTDOWN_FAILS = {ANNOTATION_PREFIX + "Shutdown": "error(boom)"}


@pytest.fixture
def cluster(request, short_run_root):
    p = KindProvider()
    a = p.availability()
    if not a:
        skip_unless_strict(request.config, f"kind {a.reason}")
    os.environ["RECONVERGE_RUN_ROOT"] = str(short_run_root)
    run = run_mod.start(purpose="test-kind-leak")
    try:
        yield p.start(run, smoke=False)
    finally:
        run.close()
        os.environ.pop("RECONVERGE_RUN_ROOT", None)


def _run_and_delete(cluster, name: str, annotations: dict[str, str]) -> set[str]:
    """Start a stub pod, note its shims (by id), delete it; returns those ids."""
    kube = cluster.truth()
    body = smoke_pod(name)
    body["metadata"]["annotations"] = annotations
    kube.create(PODS, "default", body)

    def running() -> bool:
        pod = kube.get(PODS, "default", name) or {}
        return pod.get("status", {}).get("phase") == "Running"

    wait_for(running, timeout=120, what=f"{name} Running", interval=0.5)
    mine = {s["id"] for s in cluster.node_shims() if s.get("pod") == f"default/{name}"}
    assert len(mine) == 2, f"sandbox and container shims of {name}: {cluster.node_shims()}"
    kube.delete(PODS, "default", name, grace_seconds=0)
    wait_for(lambda: kube.get(PODS, "default", name) is None, timeout=60, what=f"{name} gone")
    return mine


def test_shutdown_failpoint_leaks_the_pods_shims_and_a_clean_pod_does_not(cluster) -> None:
    leaky = _run_and_delete(cluster, "leaky", SHUTDOWN_FAILS)
    # containerd drops its tasks when the pod goes; the failed Shutdown leaves the daemons
    leaked = wait_for(
        lambda: {s["id"] for s in cluster.stub_leaks()} & leaky,
        timeout=60,
        what="leaky's shims alive without containerd tasks",
        accept=lambda ids: ids == leaky,
    )
    assert leaked == leaky
    clean = _run_and_delete(cluster, "clean", {})
    wait_for(
        lambda: not {s["id"] for s in cluster.node_shims()} & clean,
        timeout=60,
        what="clean's shims gone from the node's registry",
    )
    assert not {s["id"] for s in cluster.stub_leaks()} & clean
    assert {s["id"] for s in cluster.stub_leaks()} == leaky  # still leaked, nothing new
