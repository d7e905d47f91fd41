"""Seed d: the four CNClaim bugs of matrixone-operator PR #592 (issue #591), both directions.

Each case builds the minimal objects of §6.4 (``kubernetes-path.md``) on the real API
server, starts the reference claim operator (through toxiproxy) with exactly one bug switch
on (``buggy-<switch>``) or none (``fixed``), plays its trigger, and asks the truth:

- buggy -> CAUGHT with the seed's symptom, shown by *positive* evidence: the operator has
  settled (nothing queued, running or scheduled, caches equal to the truth) with the bad
  state in place, or it keeps retrying without progress;
- fixed -> CONVERGED to the state the fix produces.

Determinism (§6.4 notes): every object exists, with its status, before the operator starts;
the harness changes one thing at a time and waits for the operator to settle in between;
pod label-only updates never enqueue a claim (PodStatusChangedPredicate), so a claim is
reconciled only when the case means it to be.
"""

from __future__ import annotations

import pytest

from harness.checks import claims as chk
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims import model as m
from harness.reconciler.claims.objects import (
    create_claim,
    create_claimset,
    owner_ref,
    pod_labels,
    set_member_labels,
)
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]

SUITE = "seed-d"
LONG_AGO = 3600.0  # a boundTime well beyond waitCacheTimeout
SETTLE = 30.0  # generous: returns as soon as the operator settled


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


@pytest.mark.parametrize("buggy", variants(B.FINALIZE_SKIP_RETURNS_FALSE))
def test_finalize_pod_held_by_other_claim(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, claim_timing, verdict
):
    """(a) Deleting claim A whose pod P is referenced by claim B (PR #592 bug 1)."""
    ns, truth = kube_namespace, kube_truth
    kubelet.create_pod("pod-a", labels=pod_labels(m.POD_BOUND, "claim-a"))
    kubelet.create_pod("pod-p", labels=pod_labels(m.POD_BOUND, "claim-b"))
    create_claim(truth, ns, "claim-a", pod="pod-a", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    create_claim(truth, ns, "claim-b", pod="pod-p", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    op = claim_operator({B.FINALIZE_SKIP_RETURNS_FALSE} if buggy else ())
    chk.stuck(
        op,
        truth,
        ns,
        chk.all_of(
            chk.claim_bound("claim-a", "pod-a"),
            chk.claim_bound("claim-b", "pod-p"),
            chk.claim_finalizer("claim-a"),
        ),
        timeout=SETTLE,
        what="claims bound and settled",
    )
    # The migration agent points A at P: A's Sync re-stamps claimed-by=claim-a on P while B
    # still references P — the label overwrite of issue #591. B is not reconciled: the
    # label change is a label-only pod update.
    truth.patch(m.CNCLAIMS, ns, "claim-a", {"spec": {"podName": "pod-p"}})
    chk.stuck(
        op,
        truth,
        ns,
        chk.all_of(
            chk.pod_label("pod-p", m.CLAIMED_BY, "claim-a"),
            chk.claim_phase("claim-b", m.BOUND, pod="pod-p"),
        ),
        timeout=SETTLE,
        what="pod-p claimed by claim-a while claim-b references it",
    )
    truth.delete(m.CNCLAIMS, ns, "claim-a")

    def caught() -> str:
        passes = wait_for(
            lambda: op.count("finalize_incomplete/claim-a"),
            timeout=SETTLE,
            what="claim-a retried Finalize 5 times",
            accept=lambda n: n >= 5,
        )
        w = chk.World.read(truth, ns)
        diff = chk.all_of(
            chk.claim_deleting("claim-a"),
            chk.claim_finalizer("claim-a"),
            chk.pod_label("pod-p", m.CLAIMED_BY, "claim-a"),
        )(w)
        assert not diff, diff
        return (
            f"claim keeps its finalizer: {passes} Finalize passes, each 'skip reclaim, pod "
            f"still claimed by other CNClaim' (pod-p held by claim-b), every "
            f"{claim_timing.requeue:.1f}s"
        )

    def converged() -> str:
        chk.converge(
            truth,
            ns,
            chk.all_of(
                chk.claim_absent("claim-a"),
                chk.pod_label("pod-p", m.CLAIMED_BY, None),
                chk.pod_label("pod-p", m.PHASE_LABEL, m.POD_BOUND),
                chk.claim_phase("claim-b", m.BOUND, pod="pod-p"),
                chk.pod_label("pod-a", m.PHASE_LABEL, m.POD_DRAINING),
            ),
            timeout=SETTLE,
            what="claim-a finalized",
        )
        return "claim-a gone; pod-p released (no claimed-by), still Bound for claim-b"

    chk.judge(
        verdict,
        suite=SUITE,
        case="finalize-held-pod",
        buggy=buggy,
        fault="delete claim whose pod another claim holds",
        run=caught if buggy else converged,
    )


@pytest.mark.parametrize("buggy", variants(B.SCALEIN_INCLUDES_MIGRATING))
def test_scalein_during_migration(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, verdict
):
    """(b) Scaling a claim set 2 -> 1 while its preferred victim migrates (PR #592 bug 2)."""
    ns, truth = kube_namespace, kube_truth
    s = create_claimset(truth, ns, "set-s", replicas=2, status_replicas=2)
    member = {m.CLAIMSET: "set-s"}
    kubelet.create_pod("pod-p0", labels=pod_labels(m.POD_DRAINING))  # migration source
    kubelet.create_pod(
        "pod-a",
        labels=pod_labels(m.POD_BOUND, "set-s-aaaaa", **member),
        annotations={m.DELETION_COST: "-100"},  # the preferred scale-in victim
    )
    kubelet.create_pod("pod-b", labels=pod_labels(m.POD_BOUND, "set-s-bbbbb", **member))
    for ident, pod, src in (("aaaaa", "pod-a", "pod-p0"), ("bbbbb", "pod-b", None)):
        create_claim(
            truth,
            ns,
            f"set-s-{ident}",
            pod=pod,
            node="n1",
            phase=m.BOUND,
            bound_ago=LONG_AGO,
            source_pod=src,
            labels=set_member_labels("set-s", ident),
            owner=owner_ref(s),
        )
    recorder = chk.Recorder(truth, ns).start()
    try:
        op = claim_operator({B.SCALEIN_INCLUDES_MIGRATING} if buggy else ())
        chk.converge(
            truth,
            ns,
            chk.all_of(
                chk.claim_bound("set-s-aaaaa", "pod-a"),
                chk.claim_bound("set-s-bbbbb", "pod-b"),
                chk.claim_finalizer("set-s-aaaaa"),
                chk.claim_finalizer("set-s-bbbbb"),
                chk.claimset_replicas("set-s", 2),
            ),
            timeout=SETTLE,
            what="claim set steady with one migrating claim",
        )
        wait_for(op.set_queue.idle, timeout=SETTLE, what="claim set controller idle")
        truth.patch(m.CNCLAIMSETS, ns, "set-s", {"spec": {"replicas": 1}})

        def migrating_deleted(e: chk.Seen) -> bool:
            return (
                e.kind == "cnclaims"
                and e.name == "set-s-aaaaa"
                and bool(e.obj["metadata"].get("deletionTimestamp"))
                and m.source_pod(e.obj) is not None
            )

        def caught() -> str:
            e = recorder.wait_seen(
                migrating_deleted, timeout=SETTLE, what="migrating claim set-s-aaaaa deleted"
            )
            return (
                f"migrating claim deleted: set-s-aaaaa got a deletionTimestamp while "
                f"spec.sourcePod={m.source_pod(e.obj)}"
            )

        def converged() -> str:
            chk.converge(
                truth,
                ns,
                chk.all_of(
                    chk.claim_absent("set-s-bbbbb"),
                    chk.claim_present("set-s-aaaaa"),
                    chk.claimset_replicas("set-s", 1),
                ),
                timeout=SETTLE,
                what="claim set scaled in to 1",
            )
            assert not recorder.seen(migrating_deleted), "the migrating claim was deleted"
            return "set-s-bbbbb deleted; migrating set-s-aaaaa kept; status.replicas 1"

        chk.judge(
            verdict,
            suite=SUITE,
            case="scalein-migrating",
            buggy=buggy,
            fault="replicas 2->1 during a migration",
            run=caught if buggy else converged,
        )
    finally:
        recorder.stop()


@pytest.mark.parametrize("buggy", variants(B.LOST_KEEPS_PODNAME))
def test_lost_claim_keeps_pod_name(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, verdict
):
    """(c) A Bound claim whose pod is gone, with an idle pod available (PR #592 bug 3)."""
    ns, truth = kube_namespace, kube_truth
    kubelet.create_pod("pod-q", labels=pod_labels(m.POD_IDLE))
    create_claim(truth, ns, "claim-c", pod="pod-gone", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    op = claim_operator({B.LOST_KEEPS_PODNAME} if buggy else ())

    def caught() -> str:
        chk.stuck(
            op,
            truth,
            ns,
            chk.all_of(
                chk.claim_phase("claim-c", m.LOST, pod="pod-gone"),
                chk.pod_absent("pod-gone"),
                chk.pod_label("pod-q", m.PHASE_LABEL, m.POD_IDLE),
            ),
            timeout=SETTLE,
            what="claim-c settled Lost with its dead pod name",
        )
        return (
            "Lost claim with a dead podName: claim-c Lost, spec.podName=pod-gone; "
            "operator idle, pod-q left Idle"
        )

    def converged() -> str:
        chk.converge(
            truth, ns, chk.claim_bound("claim-c", "pod-q"), timeout=SETTLE, what="claim-c rebound"
        )
        return "claim-c Lost -> spec cleared -> Bound to pod-q"

    chk.judge(
        verdict,
        suite=SUITE,
        case="lost-podname",
        buggy=buggy,
        fault="bound pod does not exist",
        run=caught if buggy else converged,
    )


@pytest.mark.parametrize("buggy", variants(B.POD_WATCH_LABEL_ONLY))
def test_pod_watch_maps_by_spec_pod_name(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, verdict
):
    """(d) The pod of a Bound claim vanishes after its claimed-by label was removed (bug 4)."""
    ns, truth = kube_namespace, kube_truth
    kubelet.create_pod("pod-p", labels=pod_labels(m.POD_BOUND, "claim-c"))
    kubelet.create_pod("pod-q", labels=pod_labels(m.POD_IDLE))
    create_claim(truth, ns, "claim-c", pod="pod-p", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    op = claim_operator({B.POD_WATCH_LABEL_ONLY} if buggy else ())
    chk.stuck(op, truth, ns, chk.claim_bound("claim-c", "pod-p"), timeout=SETTLE, what="settled")
    # a reclaim during migration removed the label; label-only: claim-c is not reconciled
    truth.patch(m.PODS, ns, "pod-p", {"metadata": {"labels": {m.CLAIMED_BY: None}}})
    chk.stuck(
        op, truth, ns, chk.pod_label("pod-p", m.CLAIMED_BY, None), timeout=SETTLE, what="unlabelled"
    )
    runs_before = op.count("reconcile/claim-c")
    kubelet.vanish("pod-p")

    def caught() -> str:
        chk.stuck(
            op,
            truth,
            ns,
            chk.all_of(chk.claim_phase("claim-c", m.BOUND, pod="pod-p"), chk.pod_absent("pod-p")),
            timeout=SETTLE,
            what="claim-c settled Bound to the vanished pod",
        )
        runs = op.count("reconcile/claim-c") - runs_before
        assert runs == 0, f"claim-c was reconciled {runs} time(s) after the pod vanished"
        return "Bound claim to a pod that is gone: pod-p's delete reached no claim (0 reconciles)"

    def converged() -> str:
        chk.converge(
            truth, ns, chk.claim_bound("claim-c", "pod-q"), timeout=SETTLE, what="claim-c rebound"
        )
        return "pod-p delete mapped by spec.podName: claim-c Lost -> Bound to pod-q"

    chk.judge(
        verdict,
        suite=SUITE,
        case="pod-watch-label",
        buggy=buggy,
        fault="pod deleted after its claimed-by label was removed",
        run=caught if buggy else converged,
    )
