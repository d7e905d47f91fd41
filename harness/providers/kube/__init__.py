"""Kubernetes providers: ``local`` (embedded default), ``kubeconfig`` and ``kind``.

::

    from harness.providers import kube
    provider = kube.select("auto")            # or "local" | "kubeconfig" | "kind"
    cluster = provider.start(run)             # a Cluster: creds, kubeconfig, truth()
    kube.describe()                           # doctor rows (component, version, path, ...)

Why ``auto`` never picks ``kubeconfig``: that would be a user's real cluster. ``auto``
takes the embedded ``local`` control plane when its binaries exist, otherwise ``kind`` when
Docker and a node image exist; when neither is usable it still returns ``local`` so the
reason printed is the actionable one (``./ci/bootstrap`` builds the binaries).
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import ReconvergeError
from harness.providers.kube.base import (
    COMPACT,
    ETCD_PROXY,
    RESTART,
    Availability,
    Cluster,
    Provider,
    Unsupported,
)

CHOICES = ("auto", "local", "kubeconfig", "kind")
ENV_CHOICE = "RECONVERGE_KUBE"
ENV_KUBECONFIG = "RECONVERGE_KUBECONFIG"

__all__ = [
    "CHOICES",
    "COMPACT",
    "ETCD_PROXY",
    "RESTART",
    "Availability",
    "Cluster",
    "Provider",
    "Unsupported",
    "describe",
    "provider",
    "select",
]


def provider(name: str, *, kubeconfig: Path | None = None) -> Provider:
    """The provider called ``name`` (no availability check)."""
    if name == "local":
        from harness.providers.kube.local import LocalProvider

        return LocalProvider()
    if name == "kubeconfig":
        from harness.providers.kube.existing import KubeconfigProvider

        env = os.environ.get(ENV_KUBECONFIG)
        return KubeconfigProvider(kubeconfig or (Path(env) if env else None))
    if name == "kind":
        from harness.providers.kube.kind import KindProvider

        return KindProvider()
    raise ReconvergeError(
        f"unknown Kubernetes provider {name!r}", fix=f"--reconverge-kube {'|'.join(CHOICES)}"
    )


def select(option: str | None = None, *, kubeconfig: Path | None = None) -> Provider:
    """The provider a run will use for ``option`` (``--reconverge-kube``; default ``auto``).

    An explicit choice is returned even when unavailable, so the caller reports *its*
    reason; ``auto`` picks the first available of ``local``, ``kind``.
    """
    choice = option or os.environ.get(ENV_CHOICE) or "auto"
    if choice != "auto":
        return provider(choice, kubeconfig=kubeconfig)
    for name in ("local", "kind"):
        p = provider(name)
        if p.availability():
            return p
    return provider("local")


def describe(option: str | None = None, *, kubeconfig: Path | None = None) -> list[dict[str, str]]:
    """Doctor rows: kube-apiserver, etcd (with versions), optional pieces, the backend chosen.

    Each row is ``{component, version, path, backend, status}``; ``status`` is ``ok``,
    ``fallback`` (usable but flagged, e.g. Debian's etcd 3.4.23), ``missing`` or
    ``optional``. The last row names the backend a run would use and why.
    """
    from harness.providers.kube import kwok
    from harness.providers.kube.local import LocalProvider

    rows = LocalProvider().rows()
    rows += provider("kind").rows()
    rows.append(kwok.row())
    chosen = select(option, kubeconfig=kubeconfig)
    a = chosen.availability()
    rows.append(
        {
            "component": "kube backend",
            "status": "ok" if a else "missing",
            "version": "-",
            "path": "-",
            "backend": chosen.name if a else f"{chosen.name} ({a.reason})",
        }
    )
    return rows
