"""One namespace per test, created and removed completely — even without a controller manager.

Why we finalize namespaces ourselves: with only etcd + kube-apiserver there is no
namespace controller, so a deleted namespace stays ``Terminating`` forever (§3.1). The
harness does the controller's job for the kinds it creates: delete every object (our
finalizers stripped first, pods with grace 0), then clear ``spec.finalizers`` through the
``namespaces/<ns>/finalize`` subresource, after which the API server removes the namespace.
On a cluster with a namespace controller the last step is harmless.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from kubernetes.client.exceptions import ApiException

from harness import journal
from harness.providers.kube.api import NAMESPACES, PODS, Kube, Resource
from harness.wait import wait_for

LABEL = "reconverge.dev/run"


def name_for(nodeid: str, prefix: str = "rcv") -> str:
    """A DNS-1123 label from a test id: readable, unique per id, at most 63 characters."""
    short = re.sub(r"[^a-z0-9]+", "-", nodeid.split("::")[-1].lower()).strip("-")
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:6]
    return f"{prefix}-{short[: 63 - len(prefix) - 8].strip('-')}-{digest}"


def create(kube: Kube, name: str, *, run_id: str = "") -> str:
    """Create namespace ``name`` (a leftover of a killed run is purged first)."""
    if kube.get(NAMESPACES, None, name) is not None:
        purge(kube, name, [PODS])
    kube.create(NAMESPACES, None, {"metadata": {"name": name, "labels": {LABEL: run_id or "none"}}})
    journal.emit("kube", "namespace_created", ns=name)
    return name


def purge(kube: Kube, name: str, kinds: Iterable[Resource], *, timeout: float = 30.0) -> None:
    """Delete every object of ``kinds`` in ``name``, then the namespace itself, completely."""
    for res in kinds:
        try:
            items, _ = kube.list(res, name)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise
        for obj in items:
            obj_name = obj["metadata"]["name"]
            if obj["metadata"].get("finalizers"):
                try:
                    kube.patch(res, name, obj_name, {"metadata": {"finalizers": None}})
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            kube.delete(res, name, obj_name, grace_seconds=0)
    kube.delete(NAMESPACES, None, name)
    ns = kube.get(NAMESPACES, None, name)
    if ns is not None:
        ns["spec"] = {"finalizers": []}
        try:
            kube.request("PUT", NAMESPACES.path(None, name, "finalize"), body=ns)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        # like the namespace controller: once finalized, a second DELETE removes it
        kube.delete(NAMESPACES, None, name)
    wait_for(
        lambda: kube.get(NAMESPACES, None, name) is None,
        timeout=timeout,
        what=f"namespace {name} gone",
        interval=0.05,
    )
    journal.emit("kube", "namespace_removed", ns=name)
