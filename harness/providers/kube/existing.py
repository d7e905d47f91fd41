"""The ``kubeconfig`` provider: a cluster the user already has.

Why it never restarts or compacts anything: it is somebody else's cluster. The harness
only creates CRDs it owns (``core.matrixorigin.io``) and objects inside the per-test
namespaces it creates, and removes those namespaces' contents afterwards. Cases that need
an API-server restart or an etcd compaction skip with the reason.

Never chosen automatically: ``--reconverge-kube=kubeconfig`` must ask for it, so a run on
a developer laptop cannot touch the current kubectl context by accident.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness import journal
from harness.errors import ProviderFailed
from harness.providers.kube import kubeconfig
from harness.providers.kube.base import Availability, Cluster, Provider
from harness.run import Run


class KubeconfigProvider(Provider):
    """Connect to the cluster of a kubeconfig (``--reconverge-kubeconfig`` or $KUBECONFIG)."""

    name = "kubeconfig"

    def __init__(self, path: Path | None = None, context: str | None = None) -> None:
        self.path = path
        self.context = context

    def _path(self) -> Path | None:
        return self.path or kubeconfig.default_path()

    def availability(self) -> Availability:
        p = self._path()
        if p is None:
            return Availability(False, "unavailable: no kubeconfig ($KUBECONFIG, ~/.kube/config)")
        if not p.is_file():
            return Availability(False, f"unavailable: {p} does not exist")
        return Availability(True)

    def rows(self) -> list[dict[str, str]]:
        p = self._path()
        a = self.availability()
        return [
            {
                "component": "kubeconfig cluster",
                "status": "optional" if a else "missing",
                "version": "-",
                "path": str(p) if p else "-",
                "backend": "kubeconfig" + ("" if a else f" ({a.reason})"),
            }
        ]

    def start(self, run: Run, **options: Any) -> BorrowedCluster:
        p = self._path()
        if p is None:
            raise ProviderFailed("no kubeconfig to use", fix="--reconverge-kubeconfig PATH")
        t0 = time.monotonic()
        creds = kubeconfig.load(p, context=self.context, workdir=run.path("kube", "creds"))
        cluster = BorrowedCluster(
            backend="kubeconfig", creds=creds, kubeconfig=run.path("kube", mkdir=True) / "kc"
        )
        kubeconfig.write(cluster.kubeconfig, creds)
        truth = cluster.truth(timeout=(5.0, 10.0))
        try:
            version = truth.request("GET", "/version")
        except Exception as exc:
            raise ProviderFailed(f"cluster of {p} is not reachable: {exc}") from None
        finally:
            truth.close()
        cluster.versions = {"kube-apiserver": str(version.get("gitVersion", "?"))}
        cluster.bring_up_seconds = time.monotonic() - t0
        journal.emit("kube", "cluster_borrowed", **cluster.describe())
        return cluster


class BorrowedCluster(Cluster):
    """A cluster the run did not start: stopping it does nothing."""

    def stop(self) -> None:
        journal.emit("kube", "cluster_released", server=self.creds.server)
