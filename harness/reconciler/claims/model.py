"""The CNClaim API as the reference operator sees it: resources, labels, phases, helpers.

Names and values follow ``kubernetes-path.md`` §6.1–6.2 (matrixone-operator
``api/core/v1alpha1``); objects are plain JSON dicts, like controller-runtime's
unstructured objects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from harness.providers.kube.api import PODS, Resource

GROUP = "core.matrixorigin.io"
VERSION = "v1alpha1"
CNCLAIMS = Resource("CNClaim", GROUP, VERSION, "cnclaims")
CNCLAIMSETS = Resource("CNClaimSet", GROUP, VERSION, "cnclaimsets")
CNPOOLS = Resource("CNPool", GROUP, VERSION, "cnpools")
__all__ = ["CNCLAIMS", "CNCLAIMSETS", "CNPOOLS", "PODS"]

# finalizers: fmt.Sprintf("%s/%s", "matrixorigin.io", name) in matrixorigin/controller-runtime
CLAIM_FINALIZER = "matrixorigin.io/cn-claim-manager"
CLAIMSET_FINALIZER = "matrixorigin.io/cn-claimset-manager"

# pod labels and annotations (§6.2)
PHASE_LABEL = "pool.matrixorigin.io/phase"
CLAIMED_BY = "pool.matrixorigin.io/claimed-by"
POOL_NAME = "pool.matrixorigin.io/pool-name"
DIRECT_POD = "pool.matrixorigin.io/direct-pod"
OWNER = "matrixorigin.io/owner"
LAST_OWNER = "matrixorigin.io/last-owner"
CLAIMSET = "matrixorigin.io/claimset"
OUTDATED = "matrixorigin.io/outdated"
INSTANCE_ID = "claim.matrixorigin.io/instance-id"
RECLAIMED_AT = "matrixorigin.io/reclaimed-at"
KRUISE_STATE = "lifecycle.apps.kruise.io/state"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

# pod phases in the pool (label values)
POD_UNKNOWN, POD_IDLE, POD_BOUND, POD_DRAINING, POD_TERMINATING = (
    "Unknown",
    "Idle",
    "Bound",
    "Draining",
    "Terminating",
)

# claim phases
PENDING, BOUND, LOST, OUTDATED_PHASE = "Pending", "Bound", "Lost", "Outdated"

# store states (HAKeeper CN work state)
STORE_WORKING, STORE_DRAINING = "Working", "Draining"


def name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("resourceVersion", ""))


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("spec", {})


def status(obj: dict[str, Any]) -> dict[str, Any]:
    s = obj.get("status")
    if s is None:
        s = obj["status"] = {}
    return s


def deleting(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def finalizers(obj: dict[str, Any]) -> list[str]:
    return list(obj.get("metadata", {}).get("finalizers") or [])


def source_pod(claim: dict[str, Any]) -> str | None:
    """The migration source's pod name, or None when the claim is not migrating."""
    src = spec(claim).get("sourcePod")
    if not src:
        return None
    return str(src.get("podName") or "") or None


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(t: dt.datetime | None = None) -> str:
    """RFC 3339 with second precision, as metav1.Time serialises."""
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def selector_matches(selector: dict[str, Any] | None, lbls: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (matchLabels AND matchExpressions); None matches all."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if lbls.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and lbls.get(key) not in values:
            return False
        if op == "NotIn" and key in lbls and lbls[key] in values:
            return False
        if op == "Exists" and key not in lbls:
            return False
        if op == "DoesNotExist" and key in lbls:
            return False
    return True


def selector_string(selector: dict[str, Any] | None) -> str:
    """A label-selector query string for matchLabels (the subset the operator writes)."""
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items()))


def pod_ready(pod: dict[str, Any]) -> bool:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False
