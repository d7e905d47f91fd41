"""The operator's informer on a real API server: list, events, intake faults, 410 -> relist."""

from __future__ import annotations

import pytest

from harness.providers.kube import COMPACT
from harness.providers.kube.api import PODS
from harness.providers.kube.endpoint import Endpoint
from harness.providers.kubelet import FakeKubelet
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims.timing import Timing
from harness.reconciler.claims.watch import Informer
from harness.wait import wait_for


@pytest.fixture
def seen():
    return []


@pytest.fixture
def informer(kube_cluster, kube_namespace, seen):
    inf = Informer(
        PODS,
        kube_namespace,
        Endpoint(kube_cluster.creds, name="direct"),
        timing=Timing().scaled(0.1),
        bugs=B.Bugs(),
        handler=lambda t, old, new: seen.append((t, new["metadata"]["name"])),
    )
    yield inf
    inf.stop()


def test_list_then_watch(informer, kube_truth, kube_namespace, seen):
    kubelet = FakeKubelet(kube_truth, kube_namespace)
    kubelet.create_pod("before")
    informer.start()
    wait_for(informer.synced.is_set, timeout=10, what="synced")
    assert seen == [("ADDED", "before")]
    kubelet.create_pod("after")
    kubelet.vanish("before")
    wait_for(lambda: ("DELETED", "before") in seen, timeout=10, what="delete seen")
    assert sorted(informer.versions()) == ["after"]


def test_intake_duplicate_and_drop(informer, kube_truth, kube_namespace, seen, failpoints):
    kubelet = FakeKubelet(kube_truth, kube_namespace)
    informer.start()
    wait_for(informer.synced.is_set, timeout=10, what="synced")
    failpoints.enable("claims.watch.pods.intake", "1*drop->1*duplicate(1)")
    kubelet.create_pod("x")  # ADDED x dropped, MODIFIED x (status) duplicated
    wait_for(lambda: informer.stats.duplicated, timeout=10, what="duplicate delivered")
    assert seen.count(("MODIFIED", "x")) == 2
    assert ("ADDED", "x") not in seen
    assert informer.stats.dropped == 1


@pytest.mark.needs(f"kube:{COMPACT}")
def test_compaction_410_relists_and_heals_a_dropped_delete(
    kube_cluster, informer, kube_truth, kube_namespace, seen, failpoints, toxiproxy
):
    proxy = toxiproxy.create("watch", kube_cluster.address)
    informer.endpoint.move(proxy.listen)
    kubelet = FakeKubelet(kube_truth, kube_namespace)
    kubelet.create_pod("p")
    informer.start()
    wait_for(informer.synced.is_set, timeout=10, what="synced")
    # a grace-0 DELETE is two events: MODIFIED (deletionTimestamp set), then DELETED
    failpoints.enable("claims.watch.pods.intake", "2*drop")
    kubelet.vanish("p")
    wait_for(
        lambda: informer.stats.dropped,
        timeout=10,
        what="MODIFIED and DELETED dropped",
        accept=lambda n: n == 2,
    )
    assert "p" in informer.versions()
    with proxy.down():
        wait_for(lambda: informer.stats.breaks, timeout=10, what="stream cut")
        kube_cluster.compact()
    wait_for(lambda: "p" not in informer.versions(), timeout=15, what="relist removed p")
    assert informer.stats.gone >= 1 and informer.stats.lists >= 2
    assert ("DELETED", "p") in seen
