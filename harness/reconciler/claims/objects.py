"""Builders for the minimal objects of §6.4: CN pods' labels, claims, claim sets.

Why builders instead of YAML fixtures: each case needs 2–4 objects with a few fields that
matter (a label, a ``sourcePod``, a ``boundTime`` in the past), and status must be written
through the status subresource after creation; a function per object keeps both steps in
one place and the cases readable.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from harness.providers.kube.api import Kube
from harness.reconciler.claims import model as m

#: labels every CN pod of the cases carries; claim selectors match them
CN_LABELS = {"app": "cn", "matrixorigin.io/component": "CNSet"}
SELECTOR = {"matchLabels": dict(CN_LABELS)}


def pod_labels(phase: str, claimed_by: str | None = None, **extra: str) -> dict[str, str]:
    """Labels of a CN pod in pool ``phase``; ``direct-pod`` skips the kruise lifecycle check."""
    lbl = {**CN_LABELS, m.PHASE_LABEL: phase, m.DIRECT_POD: "y", **extra}
    if claimed_by:
        lbl[m.CLAIMED_BY] = claimed_by
    return lbl


def create_claim(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    pod: str = "",
    node: str = "",
    phase: str | None = None,
    bound_ago: float | None = None,
    source_pod: str | None = None,
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
    finalizer: bool = False,
) -> dict[str, Any]:
    """A CNClaim, optionally already bound (spec) and with a status (second call)."""
    spec: dict[str, Any] = {"selector": SELECTOR, "podName": pod, "nodeName": node}
    if source_pod:
        spec["sourcePod"] = {"podName": source_pod, "nodeName": node}
    meta: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    if finalizer:
        meta["finalizers"] = [m.CLAIM_FINALIZER]
    obj = kube.create(m.CNCLAIMS, namespace, {"metadata": meta, "spec": spec})
    if phase:
        st: dict[str, Any] = {"phase": phase}
        if bound_ago is not None:
            t = m.now() - dt.timedelta(seconds=bound_ago)
            st["boundTime"] = m.timestamp(t)
            if pod:
                st["store"] = {"string": pod, "boundTime": m.timestamp(t), "workState": 1}
        obj = kube.patch(m.CNCLAIMS, namespace, name, {"status": st}, sub="status")
    return obj


def create_claimset(
    kube: Kube, namespace: str, name: str, *, replicas: int, status_replicas: int | None = None
) -> dict[str, Any]:
    """A CNClaimSet selecting claims labelled ``matrixorigin.io/claimset=<name>``."""
    obj = kube.create(
        m.CNCLAIMSETS,
        namespace,
        {
            "metadata": {"name": name, "finalizers": [m.CLAIMSET_FINALIZER]},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {m.CLAIMSET: name}},
                "template": {"metadata": {"labels": {}}, "spec": {"selector": SELECTOR}},
            },
        },
    )
    if status_replicas is not None:
        obj = kube.patch(
            m.CNCLAIMSETS, namespace, name, {"status": {"replicas": status_replicas}}, sub="status"
        )
    return obj


def owner_ref(claimset: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": m.CNCLAIMSETS.api_version,
        "kind": m.CNCLAIMSETS.kind,
        "name": m.name(claimset),
        "uid": claimset["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def set_member_labels(claimset: str, instance_id: str) -> dict[str, str]:
    return {m.CLAIMSET: claimset, m.INSTANCE_ID: instance_id}
