"""The one interface every Kubernetes provider implements.

Why an interface with three very different backends: suites should not care whether the
API server is our embedded etcd + kube-apiserver pair, a user's cluster or a kind node;
they need credentials, a "truth" client that bypasses every proxy, and — where the backend
can do it — the disruptive operations some faults need (restart the API server, compact
etcd to force 410 Gone). A backend that cannot do something says so with
:class:`Unsupported`, and the suite skips that case with the reason.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ReconvergeError

if TYPE_CHECKING:  # the kubernetes client is imported when a client is made, not here:
    # pytest's option parsing imports this package for CHOICES in every session
    from harness.providers.kube.api import Kube
    from harness.providers.kube.kubeconfig import Credentials
    from harness.run import Run

#: Capabilities a cluster may offer; suites ask with ``cluster.can(...)``.
RESTART = "restart-apiserver"
COMPACT = "compact-etcd"
ETCD_PROXY = "etcd-via-proxy"


class Unsupported(ReconvergeError):
    """The chosen backend cannot perform this operation (a case skips with this reason)."""


@dataclass(frozen=True)
class Availability:
    """Whether a provider can start here, and if not the one-line reason."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class Cluster(abc.ABC):
    """A running (or borrowed) Kubernetes API, as the suites see it."""

    backend: str
    creds: Credentials
    kubeconfig: Path
    versions: dict[str, str] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    bring_up_seconds: float = 0.0

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def address(self) -> str:
        """``host:port`` of the API server (a toxiproxy upstream)."""
        return self.creds.address

    def truth(self, *, timeout: tuple[float, float] = (5.0, 30.0)) -> Kube:
        """A direct client, bypassing every proxy: what the harness believes."""
        from harness.providers.kube.api import Kube

        return Kube(self.creds.api_client(), timeout=timeout, user_agent="reconverge-truth")

    def client(self, *, via: str | None = None, user_agent: str = "reconverge") -> Kube:
        """A client dialing ``via`` (a proxy's ``host:port``) or the server directly."""
        from harness.providers.kube.api import Kube

        return Kube(self.creds.api_client(via=via), user_agent=user_agent)

    def restart_apiserver(self, *, graceful: bool = True) -> float:
        """Restart the API server on the same address; returns seconds until ready again."""
        raise Unsupported(f"{self.backend}: cannot restart the API server")

    def compact(self) -> int:
        """Compact etcd at its current revision (older resourceVersions -> 410 Gone)."""
        raise Unsupported(f"{self.backend}: cannot compact etcd")

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop what this cluster started (nothing, for a borrowed cluster)."""

    def describe(self) -> dict[str, Any]:
        """A one-line summary for the journal and reports."""
        return {
            "backend": self.backend,
            "server": self.creds.server,
            "versions": dict(self.versions),
            "capabilities": sorted(self.capabilities),
            "bring_up_seconds": round(self.bring_up_seconds, 3),
        }


class Provider(abc.ABC):
    """A way to get a :class:`Cluster`."""

    name: str = ""

    @abc.abstractmethod
    def availability(self) -> Availability:
        """Cheap check (no servers started): can :meth:`start` work on this machine?"""

    @abc.abstractmethod
    def start(self, run: Run, **options: Any) -> Cluster:
        """Bring the cluster up (or connect to it); everything started is owned by ``run``."""

    @abc.abstractmethod
    def rows(self) -> list[dict[str, str]]:
        """Doctor rows for the components this provider uses."""
