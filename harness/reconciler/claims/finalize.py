"""CNClaim Finalize and reclaimCN — where seed d's bug 1 lives.

Upstream: ``Actor.Finalize`` in matrixone-operator ``pkg/controllers/cnclaim/controller.go``
(§6.3–6.4 of ``kubernetes-path.md``). Finalize runs on every reconcile of a deleting claim
that still has its finalizer; returning ``False`` means "retry in 2 s".
"""

from __future__ import annotations

from typing import Any

from harness.reconciler.claims import model as m
from harness.reconciler.claims.bugs import FINALIZE_SKIP_RETURNS_FALSE
from harness.reconciler.claims.context import Ctx
from harness.reconciler.claims.store import StoreError


def build_pod_claim_index(ctx: Ctx, *, exclude: str) -> dict[str, str]:
    """``{podName: claim}`` of every other claim that holds a pod and is not deleting."""
    index: dict[str, str] = {}
    for c in ctx.claims.list():
        pod = m.spec(c).get("podName")
        if m.name(c) == exclude or m.deleting(c) or not pod:
            continue
        index.setdefault(pod, m.name(c))
    return index


def owned_pods(ctx: Ctx, claim: str) -> list[dict[str, Any]]:
    """Pods labelled ``phase=Bound, claimed-by=<claim>`` (from the cache)."""
    return ctx.pods.list(
        lambda p: (
            m.labels(p).get(m.PHASE_LABEL) == m.POD_BOUND and m.labels(p).get(m.CLAIMED_BY) == claim
        )
    )


def finalize(ctx: Ctx, claim: dict[str, Any]) -> bool:
    """Release everything the claim holds; True when the finalizer may go.

    Raises:
        ApiException: a pod patch failed (upstream: ``(false, err)``, a backoff requeue).
        StoreError: the store refused a reclaim with anything but "does not exist".
    """
    me = m.name(claim)
    pods = owned_pods(ctx, me)
    if not pods:
        return True
    held = build_pod_claim_index(ctx, exclude=me)
    for pod in pods:
        holder = held.get(m.name(pod))
        if holder:
            if ctx.bugs.on(FINALIZE_SKIP_RETURNS_FALSE):
                # seed d, matrixone-operator PR #592 bug 1 (issue #591), pre-fix at
                # b8b168403171: the skip added by PR #587 (eb9b3563bf0a) leaves the pod
                # untouched, so every pass finds the same pod and returns (false, nil).
                ctx.log(
                    "skip reclaim, pod still claimed by other CNClaim",
                    claim=me,
                    pod=m.name(pod),
                    holder=holder,
                )
                continue
            # fix 1b8f2364e53c: release our stale claimed-by label so the holder manages
            # the pod; the pod stays phase=Bound for the holder.
            ctx.patch(m.PODS, m.name(pod), {"metadata": {"labels": {m.CLAIMED_BY: None}}})
            ctx.log(
                "release pod label, pod claimed by other CNClaim",
                claim=me,
                pod=m.name(pod),
                holder=holder,
            )
            continue
        reclaim_cn(ctx, pod, claim)
    if ctx.bugs.on(FINALIZE_SKIP_RETURNS_FALSE):  # noqa: SIM103 - the switch is the point
        # pre-fix b8b168403171: always (false, nil); a reclaimed pod lost its label, so the
        # next pass finds nothing and returns true — a held pod is found again, forever.
        return False
    # fix 1b8f2364e53c: every owned pod is released or reclaimed: done.
    return True


def reclaim_cn(ctx: Ctx, pod: dict[str, Any], claim: dict[str, Any]) -> None:
    """Give a pod back to the pool: store Draining, then pod labels (``reclaimCN``)."""
    pname = m.name(pod)
    try:
        ctx.store.patch_cn_store(pname, m.STORE_DRAINING)
    except StoreError as exc:
        if "does not exist" not in str(exc):
            raise
        ctx.log("store forgot the CN, reclaim anyway", pod=pname, error=str(exc))
    current = m.labels(pod)
    lbl: dict[str, Any] = {m.PHASE_LABEL: m.POD_DRAINING, m.CLAIMED_BY: None}
    if m.OWNER in current:
        lbl[m.OWNER] = None
        lbl[m.LAST_OWNER] = current[m.OWNER]
    for key in m.spec(claim).get("additionalPodLabels") or {}:
        lbl[key] = None
    ctx.patch(
        m.PODS,
        pname,
        {"metadata": {"labels": lbl, "annotations": {m.RECLAIMED_AT: m.timestamp()}}},
    )
    ctx.log("reclaimed", claim=m.name(claim), pod=pname)
