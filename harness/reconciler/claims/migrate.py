"""CNClaim migration: drain the source pod, then forget it (``migrate.go``, §6.3).

Why it is modelled at all: bug 2 is about a claim *in* migration. A claim with
``spec.sourcePod`` whose source pod is Draining stays migrating (it requeues every
``migrate_requeue`` reporting progress), which is the steady state scale-in must respect.
"""

from __future__ import annotations

from typing import Any

from harness.reconciler.claims import model as m
from harness.reconciler.claims.context import Ctx, ReSync, refresh
from harness.reconciler.claims.finalize import reclaim_cn
from harness.reconciler.claims.store import StoreError


def migrate(ctx: Ctx, claim: dict[str, Any]) -> float | None:
    """One migration step; returns a requeue delay while the source drains."""
    src = m.source_pod(claim)
    assert src is not None
    st = m.status(claim)
    spod = ctx.pods.get(src)
    if spod is None:
        complete(ctx, claim, reason="source pod not found")
        return None
    store_bound = m.parse_time((st.get("store") or {}).get("boundTime"))
    if store_bound is not None:
        waited = (m.now() - store_bound).total_seconds()
        if waited < ctx.timing.propagation_delay:
            raise ReSync("wait store propagation", ctx.timing.propagation_delay - waited)
    phase = m.labels(spod).get(m.PHASE_LABEL)
    if phase == m.POD_BOUND:
        reclaim_cn(ctx, spod, claim)
        _report(ctx, claim, src)
        return ctx.timing.migrate_requeue
    if phase == m.POD_DRAINING:
        _report(ctx, claim, src)
        return ctx.timing.migrate_requeue
    complete(ctx, claim, reason=f"source phase {phase}")
    return None


def _report(ctx: Ctx, claim: dict[str, Any], src: str) -> None:
    try:
        load = ctx.store.workload(src)
    except StoreError as exc:
        raise ReSync(f"report migration progress: {exc}", ctx.timing.retry_patch) from None
    m.status(claim)["migrate"] = {"source": load}


def complete(ctx: Ctx, claim: dict[str, Any], *, reason: str) -> None:
    """Clear ``status.migrate`` (written by the caller) and then ``spec.sourcePod``."""
    m.status(claim).pop("migrate", None)
    newer = ctx.patch(m.CNCLAIMS, m.name(claim), {"spec": {"sourcePod": None}})
    refresh(claim, newer)
    ctx.log("migration complete", claim=m.name(claim), reason=reason)
