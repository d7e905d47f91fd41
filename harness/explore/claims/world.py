"""The real servers of one claims-world explore run, and one fresh ``ClaimsEnv`` per schedule.

Why not pytest: the explorer decides at run time how many schedules it runs and which ones
again. It still builds the world from the suites' pieces, not copies: the run and its
janitor (``harness.run``), the local control plane provider (etcd + kube-apiserver) with
the CRDs installed as the ``kube_cluster`` fixture does, the toxiproxy server with the
plugin's ``ProxyFactory``, the ``KubePaths`` of the ``kube_paths`` fixture (an ``api`` and
a ``watch`` proxy in front of the API server, fail-over of the watch path), the fake
kubelet, and the namespace helpers of ``kube_namespace`` (created per schedule, purged
completely after it).

:class:`ClaimsEnv` is what :class:`harness.explore.claims.execute.Executor` runs on; the
regression suite builds the same object from the fixtures themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import journal
from harness import run as run_mod
from harness.errors import ReconvergeError
from harness.providers.kube.api import Kube
from harness.providers.kube.base import Cluster
from harness.providers.kubelet import FakeKubelet
from harness.pytest_plugin.kube import KubePaths
from harness.reconciler.claims import SUITE_SCALE, Timing
from harness.run import Run


@dataclass
class ClaimsEnv:
    """One schedule's world: its namespace on the shared API server, its proxies, the
    kubelet and the truth client (bypassing every proxy)."""

    cluster: Cluster
    truth: Kube
    namespace: str
    kubelet: FakeKubelet
    paths: KubePaths
    timing: Timing
    run_dir: Path
    #: the operator's seed (claim-set member names): fixed per run so a confirmation
    #: replay draws the same names
    seed: int = 0


def explore_timing(timing: Timing) -> Timing:
    """The suites' timing, but watch requests that the server does not end on its own
    within a schedule (``timeoutSeconds`` 300 s, unscaled).

    Why: at the suite scale a watch ends cleanly every 30 s, so whether a schedule sees a
    stream end without any fault would depend on how long it ran on a loaded machine —
    a naive loop that stops on a clean end (``watch_end_means_done``) would be "found" by
    a slow schedule of irrelevant steps that replays only when it is slow again. A stream
    ends here only when a step ends it (a toxic, a restart of the API server).
    """
    return replace(timing, watch_server_timeout=300.0)


def make_paths(cluster: Cluster, factory: Any) -> KubePaths:
    """The ``kube_paths`` fixture's two proxies and endpoints, on ``factory``."""
    from harness.providers.kube.endpoint import Endpoint

    api_proxy = factory.create("api", cluster.address)
    watch_proxy = factory.create("watch", cluster.address)
    return KubePaths(
        cluster=cluster,
        factory=factory,
        api=Endpoint(cluster.creds, api_proxy.listen, name="api", user_agent="claims"),
        watch=Endpoint(cluster.creds, watch_proxy.listen, name="watch", user_agent="claims"),
        api_proxy=api_proxy,
        watch_proxy=watch_proxy,
    )


class ClaimsWorld:
    """etcd + kube-apiserver (local provider) + toxiproxy for the life of one explore run."""

    def __init__(self, *, seed: int, time_scale: float = SUITE_SCALE, run: Run | None = None):
        self.seed = seed
        self.timing = explore_timing(Timing().scaled(time_scale))
        self.run = run
        self._own_run = run is None
        self.cluster: Cluster | None = None
        self.truth: Kube | None = None
        self.server: Any = None
        self.count = 0

    def __enter__(self) -> ClaimsWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> ClaimsWorld:
        from harness.providers import kube, toxiproxy
        from harness.providers.kube import crds

        provider = kube.provider("local")
        available = provider.availability()
        if not available:
            raise ReconvergeError(
                f"the claims world needs etcd + kube-apiserver: {available.reason}",
                fix="./ci/bootstrap",
            )
        if self.run is None:
            self.run = run_mod.start(purpose="explore", seed=self.seed, proc="explore")
        try:
            self.server = toxiproxy.start(self.run)
            self.cluster = provider.start(self.run)
            self.truth = self.cluster.truth()
            crds.install(self.truth)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self.truth is not None:
            self.truth.close()
            self.truth = None
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.stop()
            self.cluster = None
        if self._own_run and self.run is not None:
            self.run.close()
            self.run = None

    @contextlib.contextmanager
    def env(self, label: str) -> Iterator[ClaimsEnv]:
        """A ``ClaimsEnv`` of its own for one schedule (namespace, proxies, kubelet)."""
        from harness.providers.kube import namespaces
        from harness.pytest_plugin import ProxyFactory
        from harness.reconciler.claims.model import CNCLAIMS, CNCLAIMSETS, CNPOOLS, PODS

        assert self.run is not None and self.cluster is not None and self.truth is not None
        self.count += 1
        digest = hashlib.sha1(f"{self.seed}:{label}:{self.count}".encode()).hexdigest()[:6]
        ns = f"exc-{self.count}-{digest}"
        namespaces.create(self.truth, ns, run_id=self.run.id)
        factory = ProxyFactory(self.server, ns)
        journal.emit("explore", "env", namespace=ns, label=label)
        try:
            env = ClaimsEnv(
                cluster=self.cluster,
                truth=self.truth,
                namespace=ns,
                kubelet=FakeKubelet(self.truth, ns),
                paths=make_paths(self.cluster, factory),
                timing=self.timing,
                run_dir=self.run.dir,
                seed=self.seed,
            )
            yield env
        finally:
            factory.cleanup()
            with contextlib.suppress(Exception):
                namespaces.purge(self.truth, ns, [CNCLAIMSETS, CNCLAIMS, CNPOOLS, PODS])
