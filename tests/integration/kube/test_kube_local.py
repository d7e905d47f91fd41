"""The local control plane on real etcd + kube-apiserver: TLS through toxiproxy, restart,
compaction -> 410, the fake kubelet, namespace purge, and clean-up after SIGKILL."""

from __future__ import annotations

import os

import pytest
from kubernetes import watch as kwatch
from kubernetes.client.exceptions import ApiException

from harness import janitor
from harness.providers.kube import COMPACT, RESTART, namespaces, pki
from harness.providers.kube.api import NAMESPACES, PODS
from harness.providers.kubelet import FakeKubelet, StepSkipped
from harness.reconciler.claims import model as m
from harness.wait import wait_for


def test_cluster_is_ready_and_crds_serve(kube_cluster, kube_truth):
    version = kube_truth.request("GET", "/version")
    assert version.get("major") == "1"
    items, rv = kube_truth.list(m.CNCLAIMS, "default")
    assert items == [] and rv
    assert kube_cluster.kubeconfig.is_file()
    if kube_cluster.backend == "local":
        assert "127.0.0.1" in pki.sans_of(kube_cluster.bundle.server_cert)


@pytest.mark.needs("toxiproxy")
def test_tls_passes_through_toxiproxy(kube_cluster, toxiproxy):
    proxy = toxiproxy.create("api", kube_cluster.address)
    kube = kube_cluster.client(via=proxy.listen)
    try:
        assert kube.host.endswith(f":{proxy.port}")
        assert kube.get(NAMESPACES, None, "default") is not None
        proxy.add_toxic("latency", latency=200, jitter=0)
        assert kube.get(NAMESPACES, None, "default") is not None
    finally:
        kube.close()


def test_fake_kubelet_lifecycle(kube_truth, kube_namespace, failpoints):
    ns = kube_namespace
    kubelet = FakeKubelet(kube_truth, ns)
    pod = kubelet.create_pod("p1", labels={"app": "cn"})
    assert pod["status"]["phase"] == "Running"
    assert m.pod_ready(pod)
    # graceful delete of a scheduled pod only marks it: the kubelet finishes it
    kube_truth.delete(PODS, ns, "p1")
    marked = kube_truth.get(PODS, ns, "p1")
    assert marked is not None and marked["metadata"].get("deletionTimestamp")
    assert kubelet.finish_terminating() == ["p1"]
    assert kube_truth.get(PODS, ns, "p1") is None
    kubelet.create_pod("p2")
    assert kubelet.set_phase("p2", "Succeeded")["status"]["phase"] == "Succeeded"
    failpoints.enable("kubelet.vanish", "1*drop")
    with pytest.raises(StepSkipped):
        kubelet.vanish("p2")
    assert kube_truth.get(PODS, ns, "p2") is not None
    assert kubelet.vanish("p2") is True
    assert kube_truth.get(PODS, ns, "p2") is None


def test_namespace_purge_really_removes_it(kube_truth):
    name = namespaces.create(kube_truth, "rcv-purge-check")
    FakeKubelet(kube_truth, name).create_pod("p")
    kube_truth.create(
        m.CNCLAIMS,
        name,
        {
            "metadata": {"name": "c", "finalizers": [m.CLAIM_FINALIZER]},
            "spec": {"selector": {}},
        },
    )
    namespaces.purge(kube_truth, name, [m.CNCLAIMS, PODS])
    assert kube_truth.get(NAMESPACES, None, name) is None


@pytest.mark.needs(f"kube:{COMPACT}")
def test_compaction_makes_an_old_watch_410(kube_cluster, kube_truth, kube_namespace):
    ns = kube_namespace
    _, old_rv = kube_truth.list(PODS, ns)
    FakeKubelet(kube_truth, ns).create_pod("after")
    kube_cluster.compact()
    w = kwatch.Watch(return_type="object")
    with pytest.raises(ApiException) as err:
        for _ in w.stream(
            kube_truth.list_function(PODS),
            ns,
            resource_version=old_rv,
            timeout_seconds=5,
            _request_timeout=(5, 10),
        ):
            pass
    assert err.value.status == 410


@pytest.mark.needs(f"kube:{RESTART}")
def test_restart_keeps_address_and_data(kube_cluster, kube_truth, kube_namespace):
    FakeKubelet(kube_truth, kube_namespace).create_pod("survivor")
    took = kube_cluster.restart_apiserver(graceful=True)
    assert took < 60
    assert kube_truth.get(PODS, kube_namespace, "survivor") is not None


KILLED = """
import os, signal

def test_killed(kube_cluster):
    print("RUN", os.environ.get("RCV_PROBE"), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_run_leaves_no_control_plane_after_sweep(killed_run):
    """A pytest holding etcd + kube-apiserver is SIGKILLed; a sweep removes both."""
    killed = killed_run(KILLED)
    run_dir = killed.run_dir
    procs = [r for r in janitor.load_resources(run_dir) if r.kind == "process"]
    names = {r.data["name"] for r in procs}
    assert {"etcd", "kube-apiserver"} <= names, names
    alive = [r for r in procs if janitor.proc_is(int(r.data["pid"]), r.data.get("start"))]
    assert alive, "the killed run should have left servers behind"
    killed.sweep()
    wait_for(
        lambda: not [r for r in procs if janitor.proc_is(int(r.data["pid"]), r.data.get("start"))],
        timeout=30,
        what="etcd and kube-apiserver gone after the sweep",
    )
    assert janitor.pids_marked(run_dir.name) == []
    assert not any(p.name.startswith(f"rcv-{run_dir.name}") for p in os.scandir("/dev/shm"))


def test_kubeconfig_provider_borrows_a_running_cluster(kube_cluster, reconverge_run):
    """The ``kubeconfig`` backend, pointed at the session cluster's kubeconfig."""
    from harness.providers.kube import Unsupported
    from harness.providers.kube.existing import KubeconfigProvider

    provider = KubeconfigProvider(kube_cluster.kubeconfig)
    assert provider.availability()
    borrowed = provider.start(reconverge_run)
    truth = borrowed.truth()
    try:
        assert truth.get(NAMESPACES, None, "default") is not None
        assert borrowed.address == kube_cluster.address
        assert not borrowed.can(RESTART) and not borrowed.can(COMPACT)
        with pytest.raises(Unsupported):
            borrowed.compact()
    finally:
        truth.close()
        borrowed.stop()


@pytest.mark.needs("toxiproxy", "etcd", "kube-apiserver")
def test_etcd_behind_toxiproxy_surfaces_as_api_latency(reconverge_run, toxiproxy_server):
    """apiserver -> toxiproxy -> etcd: storage latency shows up on API writes."""
    import time

    from harness.providers.kube.local import LocalProvider

    plane = LocalProvider().start(reconverge_run, etcd_proxy=toxiproxy_server.client)
    truth = plane.truth()
    try:
        assert plane.etcd_proxy is not None
        t0 = time.monotonic()
        truth.create(NAMESPACES, None, {"metadata": {"name": "fast"}})
        fast = time.monotonic() - t0
        plane.etcd_proxy.add_toxic("latency", latency=300, jitter=0)
        t0 = time.monotonic()
        truth.create(NAMESPACES, None, {"metadata": {"name": "slow"}})
        slow = time.monotonic() - t0
        assert slow >= 0.3 and slow > fast + 0.2, (fast, slow)
    finally:
        truth.close()
        plane.stop()
