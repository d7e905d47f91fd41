"""Seed d on a real kubelet: the four PR #592 claim switches and reset_peer mid-watch, on kind.

The cases are the seed-d suites' own functions (``test_seed_d_claims.py`` and the reset_peer
case of ``test_seed_d_watch.py``) — same objects, triggers, checks, symptom predicates and
fire counts — collected here with four fixtures swapped for kind's:

- ``kube_cluster`` is the session's kind cluster (kind's API server, our CRDs installed), so
  ``kube_paths`` puts toxiproxy in front of *kind's* API server (127.0.0.1 is in its
  certificate's SANs) and the reset_peer toxic cuts the operator's watch of it;
- ``kubelet`` is :class:`harness.kind.fixtures.KindKubelet`: every pod a case creates (the
  reference operator has no pool controller; the case plays the pool, as upstream's CNPool
  controller would) is scheduled by kube-scheduler and run by kind's kubelet on RuntimeClass
  ``reconverge-stub`` — kubelet → CRI → containerd 1.6.20 → the stub — and the case goes on
  only once kubelet wrote its final Running/Ready status, so the operator sees no status
  change the case did not cause; ``vanish`` is a grace-0 DELETE and kubelet kills the pod;
- ``kube_namespace`` is ``kind_namespace``: purged afterwards, then no shim of it may be
  left in the node (a teardown failure otherwise);
- ``verdict`` labels the rows ``seed-d@kind`` / ``seed-d-watch@kind`` and adds the node's
  kubelet and containerd versions.

The cases prove their faults from the truth and the operator's journal, never from a kubelet's
records (see their module docstrings), so they run here unchanged: buggy → CAUGHT with the
seed's symptom, fixed → CONVERGED.
"""

from __future__ import annotations

import pytest

from harness.kind.fixtures import KindVerdict
from harness.suite_reuse import load_suite

#: the first kind case of a session pays the cluster bring-up (minutes on a loaded box)
pytestmark = [pytest.mark.needs("kind", "toxiproxy"), pytest.mark.suite, pytest.mark.timeout(900)]

CLAIMS = load_suite("test_seed_d_claims")
WATCH = load_suite("test_seed_d_watch")


@pytest.fixture
def kube_cluster(kind_cluster):
    """kind's API server instead of the session's ``--reconverge-kube`` backend."""
    return kind_cluster.cluster


@pytest.fixture
def kube_namespace(kind_namespace):
    """The case's namespace, leak-checked in the node after its purge."""
    return kind_namespace


@pytest.fixture
def kubelet(kind_kubelet):
    """kind's real kubelet behind the fake kubelet's interface."""
    return kind_kubelet


@pytest.fixture
def verdict(verdict, kind_cluster):
    """The plugin's recorder, rows labelled ``@kind`` with the node's versions."""
    return KindVerdict(verdict, kind_cluster)


# the seed-d cases, collected here with the fixtures above
test_finalize_pod_held_by_other_claim = CLAIMS.test_finalize_pod_held_by_other_claim
test_scalein_during_migration = CLAIMS.test_scalein_during_migration
test_lost_claim_keeps_pod_name = CLAIMS.test_lost_claim_keeps_pod_name
test_pod_watch_maps_by_spec_pod_name = CLAIMS.test_pod_watch_maps_by_spec_pod_name
test_reset_peer_mid_watch = WATCH.test_reset_peer_mid_watch
