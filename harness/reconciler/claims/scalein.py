"""CNClaimSet scale-in: which claims to delete, in which order — where seed d's bug 2 lives.

Upstream: ``Actor.scaleIn`` and ``sortClaimsToDelete``/``claimDeletionOrder`` in
matrixone-operator ``pkg/controllers/cnclaimset/controller.go`` (§6.3–6.4).
"""

from __future__ import annotations

from typing import Any

from harness.reconciler.claims import model as m
from harness.reconciler.claims.bugs import SCALEIN_INCLUDES_MIGRATING
from harness.reconciler.claims.context import Ctx

_CLAIM_PHASE_ORDER = {m.PENDING: 0, m.LOST: 1, m.OUTDATED_PHASE: 2, m.BOUND: 3}
_POD_PHASE_ORDER = {"Pending": 0, "Failed": 1, "Running": 2}


def _deletion_cost(pod: dict[str, Any]) -> int:
    try:
        return int(m.annotations(pod).get(m.DELETION_COST, "0"))
    except ValueError:
        return 0


def deletion_key(ctx: Ctx, claim: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key: smaller = deleted first.

    1. claims without a pod (no podName, phase Lost, or pod not found) first;
    2. claim phase Pending < Lost < Outdated < Bound;
    3. pod order: unscheduled < scheduled, pod phase Pending < Failed < Running,
       NotReady < Ready, lower pod-deletion-cost, newer pod first;
    4. claims without pods: newer claim first. A final tie-break on the name makes the
       order total (upstream's sort is not stable; the harness must be deterministic).
    """
    st = claim.get("status") or {}
    pod_name = m.spec(claim).get("podName")
    pod = ctx.pods.get(pod_name) if pod_name else None
    no_pod = pod is None or st.get("phase") == m.LOST
    phase = _CLAIM_PHASE_ORDER.get(st.get("phase") or m.PENDING, 0)
    if no_pod:
        created = claim["metadata"].get("creationTimestamp", "")
        return (0, phase, (), _neg(created), m.name(claim))
    assert pod is not None
    pod_key = (
        1 if pod.get("spec", {}).get("nodeName") else 0,
        _POD_PHASE_ORDER.get(pod.get("status", {}).get("phase", ""), 0),
        1 if m.pod_ready(pod) else 0,
        _deletion_cost(pod),
        _neg(pod["metadata"].get("creationTimestamp", "")),
    )
    return (1, phase, pod_key, "", m.name(claim))


def _neg(ts: str) -> tuple[int, ...]:
    """Newer first: negate the digits of an RFC 3339 timestamp."""
    return tuple(-ord(ch) for ch in ts)


def sort_claims_to_delete(ctx: Ctx, claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(claims, key=lambda c: deletion_key(ctx, c))


def scale_in(
    ctx: Ctx, claimset: dict[str, Any], owned: list[dict[str, Any]], count: int
) -> list[dict[str, Any]]:
    """Delete ``count`` claims; returns the claims the set still owns."""
    candidates = list(owned)
    migrating: list[dict[str, Any]] = []
    # journaled in both variants: the evidence a case's scale-in met a migrating claim
    ctx.log(
        "scale-in",
        claimset=m.name(claimset),
        count=count,
        owned=sorted(m.name(c) for c in owned),
        migrating=sorted(m.name(c) for c in owned if m.source_pod(c)),
    )
    if not ctx.bugs.on(SCALEIN_INCLUDES_MIGRATING):
        # fix 1b8f2364e53c (PR #592 bug 2): a claim with spec.sourcePod is mid-migration;
        # deleting it makes its Finalize race the migration (issue #591). Skip it and clamp
        # the count, so "all migrating" deletes nothing.
        migrating = [c for c in owned if m.source_pod(c)]
        candidates = [c for c in owned if not m.source_pod(c)]
        if migrating:
            ctx.log(
                "skip migrating claims from scale-in",
                claimset=m.name(claimset),
                claims=[m.name(c) for c in migrating],
            )
        count = min(count, len(candidates))
    # else: seed d, PR #592 bug 2, pre-fix b8b168403171: every owned claim is a candidate,
    # including one whose spec.sourcePod is set (issue #591: the set scaled in 2 min after
    # migration cn-rvghl -> cn-n6zb9 started and picked the migrating claim).
    if count <= 0:
        return owned
    victims = candidates if count >= len(candidates) else sort_claims_to_delete(ctx, candidates)
    victims = victims[:count]
    for v in victims:
        ctx.log(
            "scale-in delete claim",
            claimset=m.name(claimset),
            claim=m.name(v),
            source_pod=m.source_pod(v),
            pod=m.spec(v).get("podName"),
        )
        ctx.delete_decided(m.CNCLAIMS, v)
    gone = {m.name(v) for v in victims}
    return [c for c in candidates if m.name(c) not in gone] + migrating
