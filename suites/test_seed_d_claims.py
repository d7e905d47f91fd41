"""Seed d: the four CNClaim bugs of matrixone-operator PR #592 (issue #591), both directions.

Each case builds the minimal objects of §6.4 (``kubernetes-path.md``) on the real API
server, starts the reference claim operator (through toxiproxy) with exactly one bug switch
on (``buggy-<switch>``) or none (``fixed``), plays its trigger, and lets
:func:`harness.checks.claims.observe` read the truth until the state is final. The
verdict is ``verdict.judge``'s (rules in :mod:`harness.verdict`):

- buggy -> CAUGHT only when the case's symptom predicate sees the seed's *whole* signature
  on a final state (the operator settled with the bad state in place, or it keeps retrying
  without the truth changing, or the transient bad write was recorded) — a buggy run that
  merely times out or fails some other way is MISSED;
- fixed -> CONVERGED: every check as the fix leaves it, the operator quiescent, held;
- either -> INCONCLUSIVE when the API server could not be read, or the case's fault never
  reached the code its switch guards (the ``fired`` counts: the harness's own triggers,
  seen take effect on the truth, and the operator's journaled decision at the switch site).

Determinism (§6.4 notes): every object exists, with its status, before the operator starts;
the harness changes one thing at a time and waits for the operator to settle in between;
pod label-only updates never enqueue a claim (PodStatusChangedPredicate), so a claim is
reconciled only when the case means it to be.

Backends: the cases take the ``kube_*`` fixtures and the ``kubelet`` fixture only, and
prove their faults from the truth and the operator's journal (never from the fake
kubelet's), so a backend with a real kubelet can run them unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from harness.checks import claims as chk
from harness.checks import faults
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims import model as m
from harness.reconciler.claims.objects import (
    create_claim,
    create_claimset,
    owner_ref,
    pod_labels,
    set_member_labels,
)
from harness.verdict import Finding
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]

SUITE = "seed-d"
LONG_AGO = 3600.0  # a boundTime well beyond waitCacheTimeout
SETTLE = 30.0  # generous: every wait returns as soon as its state is final
LOOP_PASSES = 5  # Finalize passes without a change that make "retries forever"


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


def _variant(buggy: bool) -> str:
    return "buggy" if buggy else "fixed"


# -- (a) PR #592 bug 1: Finalize skips a pod another claim holds and never completes ------


def finalize_signature(f: Mapping[str, Finding]) -> str | None:
    """claim-a keeps its finalizer, Finalize loops without progress, pod-p still Bound to it."""
    if (
        chk.ended(f, "looping")
        and chk.failing(
            f, "claim-a keeps its finalizer", "pod-p still bound to claim-a", "Finalize completes"
        )
        and chk.holding(f, "claim-b keeps pod-p")
    ):
        return (
            f"claim keeps its finalizer: {f[chk.END].symptom}; pod-p still Bound and "
            f"claimed by the deleting claim-a while claim-b holds it"
        )
    return None


@pytest.mark.parametrize("buggy", variants(B.FINALIZE_SKIP_RETURNS_FALSE))
def test_finalize_pod_held_by_other_claim(
    buggy,
    claim_operator,
    kube_truth,
    kube_namespace,
    kubelet,
    claim_timing,
    reconverge_run,
    verdict,
):
    """(a) Deleting claim A whose pod P is referenced by claim B (PR #592 bug 1)."""
    ns, truth = kube_namespace, kube_truth
    kubelet.create_pod("pod-a", labels=pod_labels(m.POD_BOUND, "claim-a"))
    kubelet.create_pod("pod-p", labels=pod_labels(m.POD_BOUND, "claim-b"))
    create_claim(truth, ns, "claim-a", pod="pod-a", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    create_claim(truth, ns, "claim-b", pod="pod-p", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    op = claim_operator({B.FINALIZE_SKIP_RETURNS_FALSE} if buggy else ())
    chk.settle(
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
    chk.settle(
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
    faults.observed("overwrite", pod="pod-p", claimed_by="claim-a", held_by="claim-b")
    deleted = truth.delete(m.CNCLAIMS, ns, "claim-a") or {}
    if deleted.get("metadata", {}).get("deletionTimestamp"):
        faults.observed("delete", claim="claim-a")

    def passes() -> int:
        return op.count("finalize_incomplete/claim-a")

    first: dict[str, object] = {}

    def looping(f: Mapping[str, Finding], w: chk.World, stable: float) -> str | None:
        """N Finalize passes returned false while the truth did not change at all."""
        n = passes()
        if n < 2:  # pass 1 reclaims pod-a (a change); from pass 2 on nothing may move
            return None
        first.setdefault("n", n)
        first.setdefault("versions", w.versions())
        if n - int(first["n"]) >= LOOP_PASSES and w.versions() == first["versions"]:
            return (
                f"{n} Finalize passes returned false, every {claim_timing.requeue:.1f}s, "
                f"the last {n - int(first['n'])} without any change in the truth"
            )
        return None

    obs = chk.observe(
        truth,
        ns,
        [
            chk.fact("claim-a finalized", chk.claim_absent("claim-a")),
            chk.never(
                "claim-a keeps its finalizer",
                chk.all_of(chk.claim_deleting("claim-a"), chk.claim_finalizer("claim-a")),
                "claim-a deleting, its finalizer still present",
            ),
            chk.never(
                "pod-p still bound to claim-a",
                chk.all_of(
                    chk.pod_label("pod-p", m.CLAIMED_BY, "claim-a"),
                    chk.pod_label("pod-p", m.PHASE_LABEL, m.POD_BOUND),
                ),
                "pod-p still Bound, claimed by the deleting claim-a",
            ),
            chk.fact(
                "pod-p released for claim-b",
                chk.all_of(
                    chk.pod_label("pod-p", m.CLAIMED_BY, None),
                    chk.pod_label("pod-p", m.PHASE_LABEL, m.POD_BOUND),
                ),
            ),
            chk.fact("claim-b keeps pod-p", chk.claim_phase("claim-b", m.BOUND, pod="pod-p")),
            chk.fact("pod-a reclaimed", chk.pod_label("pod-a", m.PHASE_LABEL, m.POD_DRAINING)),
            chk.counter(
                "Finalize completes",
                passes,
                lambda n: n == 0,
                "{n} Finalize passes returned false",
            ),
        ],
        op=op,
        final=looping,
        final_end="looping",
        timeout=SETTLE,
        what="claim-a finalized",
    )
    verdict.judge(
        suite=SUITE,
        case="finalize-held-pod",
        variant=_variant(buggy),
        fault="delete claim whose pod another claim holds",
        findings=obs.findings,
        fired={
            **faults.fired(reconverge_run.dir, verdict.since, effects=["overwrite", "delete"]),
            # Finalize met pod-p held by claim-b (the branch bug 1 lives in), either way
            "finalize-held": sum(
                chk.journaled(
                    reconverge_run.dir,
                    verdict.since,
                    "claims",
                    event,
                    ns=ns,
                    claim="claim-a",
                    pod="pod-p",
                    holder="claim-b",
                )
                for event in (
                    "skip reclaim, pod still claimed by other CNClaim",  # the switch on
                    "release pod label, pod claimed by other CNClaim",  # the fix
                )
            ),
        },
        symptom=finalize_signature,
        fixed_text="claim-a gone; pod-p released (no claimed-by), still Bound for claim-b",
    )


# -- (b) PR #592 bug 2: scale-in picks a claim that is migrating -------------------------------


def scalein_signature(f: Mapping[str, Finding]) -> str | None:
    """The migrating claim got a deletionTimestamp while its spec.sourcePod was set."""
    if chk.ended(f, "seen") and chk.failing(f, "migrating claim deleted"):
        return f"migrating claim deleted: {f['migrating claim deleted'].symptom}"
    return None


@pytest.mark.parametrize("buggy", variants(B.SCALEIN_INCLUDES_MIGRATING))
def test_scalein_during_migration(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, reconverge_run, verdict
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
        # not "settled": the migrating claim requeues itself while its source drains
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
        patched = truth.patch(m.CNCLAIMSETS, ns, "set-s", {"spec": {"replicas": 1}})
        if patched["spec"]["replicas"] == 1:
            faults.observed("replicas 2->1", claimset="set-s")

        def migrating_deleted(e: chk.Seen) -> bool:
            return (
                e.kind == "cnclaims"
                and e.name == "set-s-aaaaa"
                and bool(e.obj["metadata"].get("deletionTimestamp"))
                and m.source_pod(e.obj) is not None
            )

        def deleted_check(_: chk.World) -> Finding:
            name = "migrating claim deleted"
            hits = recorder.seen(migrating_deleted)
            if hits:
                return Finding(
                    name,
                    False,
                    f"set-s-aaaaa got a deletionTimestamp while spec.sourcePod="
                    f"{m.source_pod(hits[0].obj)}",
                )
            blind = recorder.blind()
            if blind:
                return Finding(name, False, blind, observed=False)
            return Finding(name, True)

        def seen(f: Mapping[str, Finding], _w: chk.World, _stable: float) -> str | None:
            bad = f.get("migrating claim deleted")
            return f"seen: {bad.symptom}" if bad is not None and not bad.ok else None

        obs = chk.observe(
            truth,
            ns,
            [
                deleted_check,
                chk.fact("set-s-aaaaa kept", chk.claim_present("set-s-aaaaa")),
                chk.fact("set-s-bbbbb deleted", chk.claim_absent("set-s-bbbbb")),
                chk.fact("status.replicas 1", chk.claimset_replicas("set-s", 1)),
            ],
            op=None,  # never idle while a claim migrates: converged = all ok, held
            final=seen,
            final_end="seen",
            timeout=SETTLE,
            what="claim set scaled in to 1",
        )
    finally:
        recorder.stop()
    verdict.judge(
        suite=SUITE,
        case="scalein-migrating",
        variant=_variant(buggy),
        fault="replicas 2->1 during a migration",
        findings=obs.findings,
        fired={
            **faults.fired(reconverge_run.dir, verdict.since, effects=["replicas 2->1"]),
            # scale-in ran with the migrating claim among the set's claims, either way
            "scale-in-migrating": chk.journaled(
                reconverge_run.dir,
                verdict.since,
                "claims",
                "scale-in",
                ns=ns,
                claimset="set-s",
                migrating=["set-s-aaaaa"],
            ),
        },
        symptom=scalein_signature,
        fixed_text="set-s-bbbbb deleted; migrating set-s-aaaaa kept; status.replicas 1",
    )


# -- (c) PR #592 bug 3: a Lost claim keeps its dead spec.podName -------------------------------


def lost_signature(f: Mapping[str, Finding]) -> str | None:
    """Settled with claim-c Lost, spec.podName naming a pod that does not exist, pod-q idle."""
    if chk.ended(f, "settled") and chk.failing(
        f, "claim-c Lost with a dead podName", "pod-q taken", "claim-c rebound"
    ):
        return (
            "Lost claim with a dead podName: claim-c Lost, spec.podName=pod-gone; "
            f"pod-q left Idle; {f[chk.END].symptom}"
        )
    return None


@pytest.mark.parametrize("buggy", variants(B.LOST_KEEPS_PODNAME))
def test_lost_claim_keeps_pod_name(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, reconverge_run, verdict
):
    """(c) A Bound claim whose pod is gone, with an idle pod available (PR #592 bug 3)."""
    ns, truth = kube_namespace, kube_truth
    kubelet.create_pod("pod-q", labels=pod_labels(m.POD_IDLE))
    create_claim(truth, ns, "claim-c", pod="pod-gone", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    if truth.get(m.PODS, ns, "pod-gone") is None:
        faults.observed("bound pod missing", claim="claim-c", pod="pod-gone")
    op = claim_operator({B.LOST_KEEPS_PODNAME} if buggy else ())
    obs = chk.observe(
        truth,
        ns,
        [
            chk.fact("claim-c rebound", chk.claim_bound("claim-c", "pod-q")),
            chk.never(
                "claim-c Lost with a dead podName",
                chk.all_of(
                    chk.claim_phase("claim-c", m.LOST, pod="pod-gone"), chk.pod_absent("pod-gone")
                ),
                "claim-c Lost, spec.podName=pod-gone (no such pod)",
            ),
            chk.never(
                "pod-q taken",
                chk.pod_label("pod-q", m.PHASE_LABEL, m.POD_IDLE),
                "pod-q still Idle",
            ),
        ],
        op=op,
        timeout=SETTLE,
        what="claim-c rebound",
    )
    verdict.judge(
        suite=SUITE,
        case="lost-podname",
        variant=_variant(buggy),
        fault="bound pod does not exist",
        findings=obs.findings,
        fired={
            **faults.fired(reconverge_run.dir, verdict.since, effects=["bound pod missing"]),
            # Sync met the NotFound pod (the branch bug 3 lives in), either way
            "sync-pod-not-found": chk.journaled(
                reconverge_run.dir,
                verdict.since,
                "claims",
                "pod not found, claim lost",
                ns=ns,
                claim="claim-c",
                pod="pod-gone",
            ),
        },
        symptom=lost_signature,
        fixed_text="claim-c Lost -> spec cleared -> Bound to pod-q",
    )


# -- (d) PR #592 bug 4: a pod delete maps to claims by label only ------------------------------


def pod_watch_signature(f: Mapping[str, Finding]) -> str | None:
    """Settled with claim-c Bound to a pod that is gone, never reconciled after the delete."""
    if chk.ended(f, "settled") and chk.failing(
        f, "claim-c Bound to a vanished pod", "claim-c reconciled after the delete"
    ):
        return (
            "Bound claim to a pod that is gone: pod-p's delete reached no claim "
            f"({f['claim-c reconciled after the delete'].symptom}); {f[chk.END].symptom}"
        )
    return None


@pytest.mark.parametrize("buggy", variants(B.POD_WATCH_LABEL_ONLY))
def test_pod_watch_maps_by_spec_pod_name(
    buggy, claim_operator, kube_truth, kube_namespace, kubelet, reconverge_run, verdict
):
    """(d) The pod of a Bound claim vanishes after its claimed-by label was removed (bug 4)."""
    ns, truth = kube_namespace, kube_truth
    kubelet.create_pod("pod-p", labels=pod_labels(m.POD_BOUND, "claim-c"))
    kubelet.create_pod("pod-q", labels=pod_labels(m.POD_IDLE))
    create_claim(truth, ns, "claim-c", pod="pod-p", node="n1", phase=m.BOUND, bound_ago=LONG_AGO)
    op = claim_operator({B.POD_WATCH_LABEL_ONLY} if buggy else ())
    chk.settle(op, truth, ns, chk.claim_bound("claim-c", "pod-p"), timeout=SETTLE, what="settled")
    # a reclaim during migration removed the label; label-only: claim-c is not reconciled
    truth.patch(m.PODS, ns, "pod-p", {"metadata": {"labels": {m.CLAIMED_BY: None}}})
    chk.settle(
        op, truth, ns, chk.pod_label("pod-p", m.CLAIMED_BY, None), timeout=SETTLE, what="unlabelled"
    )
    faults.observed("label removed", pod="pod-p")
    runs_before = op.count("reconcile/claim-c")
    kubelet.vanish("pod-p")
    if truth.get(m.PODS, ns, "pod-p") is None:
        faults.observed("pod-p vanished")
    obs = chk.observe(
        truth,
        ns,
        [
            chk.fact("claim-c rebound", chk.claim_bound("claim-c", "pod-q")),
            chk.never(
                "claim-c Bound to a vanished pod",
                chk.all_of(
                    chk.claim_phase("claim-c", m.BOUND, pod="pod-p"), chk.pod_absent("pod-p")
                ),
                "claim-c Bound to pod-p, which is gone",
            ),
            chk.counter(
                "claim-c reconciled after the delete",
                lambda: op.count("reconcile/claim-c") - runs_before,
                lambda n: n >= 1,
                "claim-c reconciled {n} times after pod-p's delete",
            ),
        ],
        op=op,
        timeout=SETTLE,
        what="claim-c rebound",
    )
    verdict.judge(
        suite=SUITE,
        case="pod-watch-label",
        variant=_variant(buggy),
        fault="pod deleted after its claimed-by label was removed",
        findings=obs.findings,
        fired={
            **faults.fired(
                reconverge_run.dir, verdict.since, effects=["label removed", "pod-p vanished"]
            ),
            # the operator's pod watch delivered the DELETE (the mapping bug 4 lives in)
            "pod-p-deleted-event": chk.journaled(
                reconverge_run.dir,
                verdict.since,
                "claims.watch",
                "event",
                kind="pods",
                type="DELETED",
                name="pod-p",
            ),
        },
        symptom=pod_watch_signature,
        fixed_text="pod-p delete mapped by spec.podName: claim-c Lost -> Bound to pod-q",
    )
