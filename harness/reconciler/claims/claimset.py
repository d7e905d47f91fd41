"""The CNClaimSet controller: own claims by selector, clean lost ones, scale out and in.

Upstream: matrixone-operator ``pkg/controllers/cnclaimset/controller.go`` (§6.3). Scale-in
itself (bug 2) is in ``scalein.py``. Not modelled: the rolling-update surge (+1 while the
template changes) — no case changes a template.
"""

from __future__ import annotations

import string
from typing import Any

from harness.reconciler.claims import model as m
from harness.reconciler.claims.context import Ctx, ReSync
from harness.reconciler.claims.scalein import scale_in


def classify(claims: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(owned, lost): lost = phase Lost, no instance-id label, or being deleted."""
    owned, lost = [], []
    for c in claims:
        if (
            (c.get("status") or {}).get("phase") == m.LOST
            or m.INSTANCE_ID not in m.labels(c)
            or m.deleting(c)
        ):
            lost.append(c)
        else:
            owned.append(c)
    return owned, lost


def _selected(ctx: Ctx, s: dict[str, Any]) -> list[dict[str, Any]]:
    sel = m.spec(s).get("selector")
    return ctx.claims.list(lambda c: m.selector_matches(sel, m.labels(c)))


def reconcile(ctx: Ctx, key: str) -> float | None:
    """One pass over claim set ``key``; returns a requeue delay or None."""
    s = ctx.claimsets.get(key)
    if s is None:
        return None
    if m.deleting(s):
        return _finalize(ctx, s)
    if m.CLAIMSET_FINALIZER not in m.finalizers(s):
        s = ctx.set_finalizers(m.CNCLAIMSETS, s, [*m.finalizers(s), m.CLAIMSET_FINALIZER])
    owned, lost = classify(_selected(ctx, s))
    st = m.status(s)
    if len(owned) != int(st.get("replicas") or 0):
        # upstream: the cached count disagrees with status; confirm with an uncached list
        items, _ = ctx.kube().list(
            m.CNCLAIMS, ctx.namespace, label_selector=m.selector_string(m.spec(s).get("selector"))
        )
        live, _ = classify(items)
        if len(live) != len(owned):
            raise ReSync("claim cache not in sync", ctx.timing.claimset_resync)
    for c in lost:
        if not m.deleting(c):
            ctx.log("delete lost claim", claimset=key, claim=m.name(c))
            ctx.delete_decided(m.CNCLAIMS, c)
    replicas = int(m.spec(s).get("replicas") or 0)
    phases = [(c.get("status") or {}).get("phase") for c in owned]
    ready = sum(p in (m.BOUND, m.OUTDATED_PHASE) for p in phases)
    if ready > replicas:
        owned = scale_in(ctx, s, owned, len(owned) - replicas)
    elif len(owned) < replicas:
        owned += _scale_out(ctx, s, replicas - len(owned))
    new_status = {
        "replicas": len(owned),
        "readyReplicas": sum(
            (c.get("status") or {}).get("phase") in (m.BOUND, m.OUTDATED_PHASE) for c in owned
        ),
        "claims": [
            {
                "name": m.name(c),
                "phase": (c.get("status") or {}).get("phase", ""),
                "podName": m.spec(c).get("podName", ""),
            }
            for c in sorted(owned, key=m.name)
        ],
        "labelSelector": f"{m.CLAIMSET}={key},{m.PHASE_LABEL}={m.POD_BOUND}",
    }
    if new_status != {k: st.get(k) for k in new_status}:
        s["status"] = {**st, **new_status}
        ctx.update(m.CNCLAIMSETS, s, sub="status")
    return None


def _scale_out(ctx: Ctx, s: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Create ``n`` claims ``<set>-<5 chars>`` from the template, owned by the set."""
    tpl = m.spec(s).get("template") or {}
    made = []
    for _ in range(n):
        ident = "".join(ctx.rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        spec = dict(tpl.get("spec") or {})
        spec.setdefault("ownerName", m.name(s))
        body = {
            "metadata": {
                "name": f"{m.name(s)}-{ident}",
                "labels": {
                    **((tpl.get("metadata") or {}).get("labels") or {}),
                    m.CLAIMSET: m.name(s),
                    m.INSTANCE_ID: ident,
                },
                "ownerReferences": [
                    {
                        "apiVersion": m.CNCLAIMSETS.api_version,
                        "kind": m.CNCLAIMSETS.kind,
                        "name": m.name(s),
                        "uid": s["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        made.append(ctx.create(m.CNCLAIMS, body))
        ctx.log("scale-out create claim", claimset=m.name(s), claim=body["metadata"]["name"])
    return made


def _finalize(ctx: Ctx, s: dict[str, Any]) -> float | None:
    """Delete every claim of the set; drop the finalizer once none is left."""
    if m.CLAIMSET_FINALIZER not in m.finalizers(s):
        return None
    left = _selected(ctx, s)
    for c in left:
        if not m.deleting(c):
            ctx.delete(m.CNCLAIMS, m.name(c))
    if left:
        return ctx.timing.requeue
    ctx.set_finalizers(m.CNCLAIMSETS, s, [f for f in m.finalizers(s) if f != m.CLAIMSET_FINALIZER])
    return None
