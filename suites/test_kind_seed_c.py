"""Seed c through a real kubelet: containerd #7496 / #8981 on the kind node's containerd 1.6.20.

The host suite (``test_seed_c_shutdown.py``) drives containerd's task API from a reference
reconciler. Here nothing of ours drives it: a pod on RuntimeClass ``reconverge-stub`` is
deleted through the API, and kubelet → CRI → containerd 1.6.20 stop and delete its
containers. The pod's annotation ``io.containerd.runtime.v2.shim.failpoint.Shutdown:
1*error(please retry)`` (TestIssue7496_ShouldRetryShutdown's failpoint, passed through by
the node's CRI ``pod_annotations``) makes each of the pod's two stub daemons (sandbox and
container) fail its first ``Shutdown``. containerd 1.6.20's ``shimTask.delete`` only logs
"failed to shutdown shim task" and forgets the shim (§3.4): it leaks.

- ``buggy-shutdown-fails``: CAUGHT only on the seed's whole signature, per shim of the pod:
  the daemon alive and answering ``Connect``, its task map empty (``State`` NotFound), no
  containerd task — with the pod gone from the API, the leaks attributed to that pod
  (sandbox and container) by the node leak checker, on a containerd whose *binary* in the
  node says 1.6. Fired: ``shim.Shutdown.before`` from the shims' own journal (2: one per
  shim).
- ``fixed-no-failpoint``: the control — the same pod without the annotation; nothing may be
  left (CONVERGED). Fired: each of the pod's shims received ``Delete`` and ``Shutdown``
  (journaled replies, whatever their outcome: the trigger reached them; zero would be
  INCONCLUSIVE, not a pass).

The shims' journal lives in the node (``harness.kind.fixtures``: the node's containerd runs
with ``RECONVERGE_RUN_DIR=/run/reconverge-node``) and is copied into the run's journal
before anything is counted. Leaked daemons are killed after the verdict, so the case's
namespace teardown (which checks the nodes again) starts clean.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from harness.checks import faults
from harness.checks import sandbox as chk
from harness.kind.fixtures import KindVerdict, shim_replies, stub_pod, wait_running
from harness.providers.kube.api import PODS
from harness.pytest_plugin.sandbox import failpoint_annotations
from harness.suite_reuse import load_suite
from harness.verdict import Finding
from harness.wait import wait_for

#: the first kind case of a session pays the cluster bring-up (minutes on a loaded box)
pytestmark = [pytest.mark.needs("kind"), pytest.mark.suite, pytest.mark.timeout(900)]

SEED_C = load_suite("test_seed_c_shutdown")  # its failpoint names and its signature parts
SUITE = SEED_C.SUITE
#: module constants so the mutation meta-test can misspell the method or force the term
SHUTDOWN_METHOD = SEED_C.SHUTDOWN_METHOD
SHUTDOWN_TERM = "1*error(please retry)"
POD = "victim"
GONE_TIMEOUT = 60.0
#: how long after the pod left the API a leak must still be there (the control's shims
#: exit within milliseconds of their Shutdown, which kubelet's pod stop sent before that)
LEAK_WINDOW = 5.0
ROLES = ("sandbox", "container")


def _pod_gone(truth, ns: str) -> Finding:
    try:
        wait_for(
            lambda: truth.get(PODS, ns, POD) is None,
            timeout=GONE_TIMEOUT,
            what=f"pod {ns}/{POD} gone from the API",
            interval=0.2,
        )
    except Exception as exc:  # TooSlow, or the API not answering
        return chk.unobservable("pod gone", exc)
    return chk.SandboxFinding(
        "pod gone", ok=True, symptom="pod gone from the API", facts={"gone": True}
    )


def leaked_pod_signature(key: str, version: str):
    """The seed's whole signature for pod ``key`` (both of its shims), as a predicate."""

    def symptom(f: Mapping[str, Finding]) -> str | None:
        lk, gone = chk.by_check(f, "node leaks"), chk.by_check(f, "pod gone")
        shims = {
            x.get("role"): x
            for x in lk.get("leaks", [])
            if x.get("pod") == key and x.get("kind") == "shim-process"
        }
        parts = {"pod gone from the API": bool(gone.get("gone"))}
        for role in ROLES:
            x = shims.get(role, {})
            parts |= {f"{role}: {k}": v for k, v in SEED_C._leaked_empty_shim(x).items()}
        parts["attributed to the pod"] = key in lk.get("pods", [])
        parts[f"containerd 1.6 (binary says {version})"] = version.startswith("1.6.")
        return chk.signature(
            parts,
            f"containerd {version} leaked both shims of pod {key.split('/')[1]} (sandbox, "
            "container): alive, answer Connect, empty task map, no containerd task; pod gone "
            "from the API",
        )

    return symptom


def _annotations(failpoint: bool) -> dict[str, str]:
    """The pod's failpoint annotation (none for the control)."""
    return failpoint_annotations(**{SHUTDOWN_METHOD: SHUTDOWN_TERM}) if failpoint else {}


@pytest.mark.parametrize(
    "failpoint",
    [pytest.param(False, id="fixed-no-failpoint"), pytest.param(True, id="buggy-shutdown-fails")],
)
def test_shutdown_error_via_kubelet(failpoint, kind_cluster, kind_truth, kind_namespace, verdict):
    """Delete a stub pod whose shims fail their first Shutdown (or, the control, do not)."""
    v = KindVerdict(verdict, kind_cluster)
    ns, truth, checker = kind_namespace, kind_truth, kind_cluster.checker
    key = f"{ns}/{POD}"
    annotations = _annotations(failpoint)
    truth.create(PODS, ns, stub_pod(POD, annotations=annotations))
    pod = wait_running(truth, ns, POD)
    node = pod["spec"]["nodeName"]
    version = checker.containerd_version(node)
    checker.look(node)  # learn the pod's sandbox and container while they run
    ids = checker.containers_of(ns, POD)
    assert sorted(p.role for p in ids.values()) == sorted(ROLES), f"learnt {ids}"
    before = checker.find()  # leaks of earlier cases are theirs, not this one's
    truth.delete(PODS, ns, POD)
    gone = chk.note(_pod_gone(truth, ns))
    leak = chk.note(checker.check(timeout=LEAK_WINDOW, pods={key}, ignore=before))
    kind_cluster.sync_journal()
    if failpoint:
        fired = faults.fired(kind_cluster.run.dir, v.since, failpoints=[SEED_C.SHUTDOWN_POINT])
    else:
        calls = shim_replies(kind_cluster.run.dir, v.since, set(ids), outcome=None)
        fired = {f"shim {m} received": calls.get(m, 0) for m in ("Delete", "Shutdown")}
    try:
        v.judge(
            suite=SUITE,
            case="shutdown error via kubelet",
            variant="buggy" if failpoint else "fixed",
            fault=(
                f"{SEED_C.SHUTDOWN_POINT}={SHUTDOWN_TERM} on the pod's shims, kubelet "
                f"deletes the pod (containerd {version} in the node)"
                if failpoint
                else f"kubelet deletes the pod, no failpoint (containerd {version} in the node)"
            ),
            findings=[gone, leak],
            fired=fired,
            symptom=leaked_pod_signature(key, version),
            fixed_text="pod gone; both its shims received Delete and Shutdown and exited",
            versions={"containerd": version},
        )
    finally:
        checker.reap(checker.find(pods={key}, ignore=before))
