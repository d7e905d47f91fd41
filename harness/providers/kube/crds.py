"""Installing our own CRDs (``fixtures/crds``) and waiting until they serve.

Why two waits: ``Established=True`` means the API server accepted the schema, but the
resource's REST endpoint appears in discovery a moment later; a reconciler that starts
watching in between gets 404s. So we wait for ``Established`` and then for an empty list
to succeed. Creating is idempotent (an existing CRD is replaced), so a borrowed cluster
gets our current schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness import fixtures_dir, journal
from harness.providers.kube.api import CRDS, Kube, Resource
from harness.wait import wait_for

FIXTURES = fixtures_dir.path("crds")


def load(directory: Path = FIXTURES) -> list[dict[str, Any]]:
    """Every CRD document under ``directory``, in file-name order."""
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


def resource_of(crd: dict[str, Any]) -> Resource:
    """The REST location of a CRD's storage version."""
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    return Resource(
        spec["names"]["kind"],
        spec["group"],
        version,
        spec["names"]["plural"],
        spec.get("scope", "Namespaced") == "Namespaced",
    )


def install(kube: Kube, docs: list[dict[str, Any]] | None = None, *, timeout: float = 30) -> None:
    """Create (or replace) each CRD, then wait until every one is Established and served."""
    docs = load() if docs is None else docs
    for doc in docs:
        name = doc["metadata"]["name"]
        current = kube.get(CRDS, None, name)
        if current is None:
            kube.create(CRDS, None, {k: v for k, v in doc.items() if k not in ("apiVersion",)})
        else:
            body = dict(doc)
            body["metadata"] = {
                **doc["metadata"],
                "resourceVersion": current["metadata"]["resourceVersion"],
            }
            kube.update(CRDS, None, body)
    for doc in docs:
        name = doc["metadata"]["name"]

        def established(n: str = name) -> bool:
            crd = kube.get(CRDS, None, n) or {}
            conds = crd.get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

        wait_for(established, timeout=timeout, what=f"CRD {name} Established", interval=0.05)
        res = resource_of(doc)
        wait_for(
            lambda r=res: kube.list(r, "default") is not None,
            timeout=timeout,
            what=f"{res.plural}.{res.group} served",
            interval=0.05,
        )
        journal.emit("kube", "crd_ready", crd=name)
