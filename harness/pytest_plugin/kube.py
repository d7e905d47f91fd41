"""pytest fixtures of the Kubernetes path (loaded as a plugin by ``harness.pytest_plugin``).

Why these scopes: the control plane is session-scoped (one cold bring-up per pytest
process, a few seconds), isolation is per test — its own namespace, its own toxiproxy
proxies for the operator's API path, its own operator instance — so one case's objects,
faults and operator never leak into the next, and a case runs the same whether it runs
first or last.

Fixtures:

- ``kube_cluster`` (session): the chosen provider's cluster with our CRDs installed;
  skipped (or failed under ``--reconverge-strict``) with the provider's reason.
- ``kube_truth``: a direct client (no proxy) — what the checks believe.
- ``kube_namespace``: a fresh namespace, purged completely afterwards.
- ``kubelet``: the deterministic fake kubelet for that namespace.
- ``kube_paths``: two toxiproxy proxies in front of the API server — ``api`` (requests)
  and ``watch`` (watch streams) — as :class:`~harness.providers.kube.endpoint.Endpoint`\\ s.
- ``claim_timing``: operator durations scaled by ``--reconverge-time-scale``.
- ``claim_operator``: factory ``claim_operator(bugs={...})`` -> a started operator
  dialing through ``kube_paths``; stopped after the test.

A case that needs a backend capability says so with ``@pytest.mark.needs("kube:compact-etcd")``
(or calls :func:`require_capability`): it skips with the reason — backend, capability and,
when ``auto`` fell back from ``local``, why — and fails under ``--reconverge-strict``.

Options: ``--reconverge-kube auto|local|kubeconfig|kind`` (env ``RECONVERGE_KUBE``),
``--reconverge-kubeconfig PATH``, ``--reconverge-time-scale F`` (default 0.1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.providers.kube.api import Kube
    from harness.providers.kube.base import Cluster
    from harness.providers.kube.endpoint import Endpoint
    from harness.providers.kubelet import FakeKubelet
    from harness.providers.toxiproxy import Proxy
    from harness.reconciler.claims import ClaimOperator, Timing
    from harness.run import Run

_CLUSTER_ERROR = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    from harness.providers.kube import CHOICES, ENV_CHOICE, ENV_KUBECONFIG

    g = parser.getgroup("reconverge")
    g.addoption(
        "--reconverge-kube",
        default=os.environ.get(ENV_CHOICE, "auto"),
        choices=CHOICES,
        help="Kubernetes backend: local (etcd + kube-apiserver, the default when built), "
        "kubeconfig (an existing cluster, never chosen by auto) or kind",
    )
    g.addoption(
        "--reconverge-kubeconfig",
        default=os.environ.get(ENV_KUBECONFIG),
        help="kubeconfig for --reconverge-kube=kubeconfig (default $KUBECONFIG, ~/.kube/config)",
    )
    g.addoption(
        "--reconverge-time-scale",
        type=float,
        default=float(os.environ.get("RECONVERGE_TIME_SCALE", "0.1")),
        help="multiply every claim-operator duration (2 s requeue, 10 s cache wait, ...)",
    )


def _unavailable(request: pytest.FixtureRequest, reason: str) -> None:
    from harness.pytest_plugin import skip_unless_strict

    skip_unless_strict(request.config, f"kube: {reason}")


_FALLBACK = pytest.StashKey[str]()


def fallback_note(choice: str | None, chosen_name: str) -> str:
    """Why ``auto`` is not on the embedded ``local`` backend ('' when it is, or not auto).

    Why it matters: the fallback (kind) lacks compaction and restart, so a case that needs
    them would otherwise just skip, and nothing would say it is because of the fallback.
    """
    from harness.providers import kube

    if (choice or "auto") != "auto" or chosen_name == "local":
        return ""
    local = kube.provider("local").availability()
    return f"auto fell back to {chosen_name}: local {local.reason or 'unavailable'}"


def require_capability(request: pytest.FixtureRequest, cluster: Cluster, capability: str) -> None:
    """Skip a case the backend cannot run — fail it under ``--reconverge-strict``.

    The reason names the backend, the capability and, when ``auto`` fell back from
    ``local``, why it did.
    """
    if cluster.can(capability):
        return
    from harness.pytest_plugin import skip_unless_strict

    note = request.config.stash.get(_FALLBACK, "")
    why = f"kube: {cluster.backend} cannot {capability}" + (f" ({note})" if note else "")
    skip_unless_strict(request.config, why)


@pytest.fixture(autouse=True)
def _kube_needs(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.needs("kube:compact-etcd")``: checked against the session's cluster."""
    from harness.pytest_plugin import KUBE_NEED_PREFIX

    wanted = [
        str(c)[len(KUBE_NEED_PREFIX) :]
        for mark in request.node.iter_markers("needs")
        for c in mark.args
        if str(c).startswith(KUBE_NEED_PREFIX)
    ]
    if not wanted:
        return
    cluster = request.getfixturevalue("kube_cluster")
    for capability in wanted:
        require_capability(request, cluster, capability)


@pytest.fixture(scope="session")
def kube_cluster(reconverge_run: Run, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The session's Kubernetes API (provider chosen by option and availability)."""
    from harness import journal
    from harness.errors import ReconvergeError
    from harness.providers import kube
    from harness.providers.kube import crds

    failed = request.config.stash.get(_CLUSTER_ERROR, None)
    if failed:
        _unavailable(request, failed)
    kc = request.config.getoption("reconverge_kubeconfig")
    provider = kube.select(
        request.config.getoption("reconverge_kube"), kubeconfig=Path(kc) if kc else None
    )
    available = provider.availability()
    if not available:
        _unavailable(request, f"{provider.name} {available.reason}")
    note = fallback_note(request.config.getoption("reconverge_kube"), provider.name)
    if note:
        request.config.stash[_FALLBACK] = note
        journal.emit("kube", "fallback", note=note)
    try:
        cluster = provider.start(reconverge_run)
        truth = cluster.truth()
        try:
            crds.install(truth)
        finally:
            truth.close()
    except ReconvergeError as exc:
        # remember: every later case skips at once instead of retrying a 60 s bring-up
        request.config.stash[_CLUSTER_ERROR] = f"{provider.name} failed to start: {exc.message}"
        raise
    journal.emit("kube", "session_cluster", **cluster.describe())
    yield cluster
    cluster.stop()


@pytest.fixture
def kube_truth(kube_cluster: Cluster) -> Iterator[Kube]:
    """A direct client to the API server (bypasses toxiproxy): the harness's truth."""
    truth = kube_cluster.truth()
    yield truth
    truth.close()


@pytest.fixture
def kube_namespace(
    kube_cluster: Cluster, kube_truth: Kube, reconverge_run: Run, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A namespace for this test only; everything in it is removed afterwards."""
    from harness.providers.kube import namespaces
    from harness.providers.kube.api import PODS
    from harness.reconciler.claims.model import CNCLAIMS, CNCLAIMSETS, CNPOOLS

    name = namespaces.name_for(request.node.nodeid)
    namespaces.create(kube_truth, name, run_id=reconverge_run.id)
    yield name
    namespaces.purge(kube_truth, name, [CNCLAIMSETS, CNCLAIMS, CNPOOLS, PODS])


@pytest.fixture
def kubelet(kube_truth: Kube, kube_namespace: str) -> FakeKubelet:
    """The harness playing the kubelet in this test's namespace."""
    from harness.providers.kubelet import FakeKubelet

    return FakeKubelet(kube_truth, kube_namespace)


@dataclass
class KubePaths:
    """The operator's two client paths through toxiproxy, and how to fail one over."""

    cluster: Cluster
    factory: Any  # the plugin's per-test ProxyFactory
    api: Endpoint
    watch: Endpoint
    api_proxy: Proxy
    watch_proxy: Proxy
    spares: list[Proxy] = field(default_factory=list)

    def failover_watch(self) -> Proxy:
        """New watch connections go to a fresh proxy; existing ones stay where they are."""
        proxy = self.factory.create(f"watch{len(self.spares) + 2}", self.cluster.address)
        self.spares.append(proxy)
        self.watch.move(proxy.listen)
        return proxy


@pytest.fixture
def kube_paths(kube_cluster: Cluster, toxiproxy: Any) -> KubePaths:
    """reconciler -> toxiproxy -> apiserver, one proxy for requests and one for watches.

    TLS passes through toxiproxy untouched; the certificate's 127.0.0.1 SAN verifies the
    proxy's loopback address.
    """
    from harness.providers.kube.endpoint import Endpoint

    api_proxy = toxiproxy.create("api", kube_cluster.address)
    watch_proxy = toxiproxy.create("watch", kube_cluster.address)
    return KubePaths(
        cluster=kube_cluster,
        factory=toxiproxy,
        api=Endpoint(kube_cluster.creds, api_proxy.listen, name="api", user_agent="claims"),
        watch=Endpoint(kube_cluster.creds, watch_proxy.listen, name="watch", user_agent="claims"),
        api_proxy=api_proxy,
        watch_proxy=watch_proxy,
    )


@pytest.fixture
def claim_timing(request: pytest.FixtureRequest) -> Timing:
    """Upstream durations scaled by ``--reconverge-time-scale`` (ratios kept)."""
    from harness.reconciler.claims import Timing

    return Timing().scaled(request.config.getoption("reconverge_time_scale"))


@pytest.fixture
def claim_operator(
    kube_namespace: str,
    kube_paths: KubePaths,
    claim_timing: Timing,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., ClaimOperator]]:
    """Factory: ``claim_operator(bugs={"pod_watch_label_only"})`` -> a started operator."""
    from harness.pytest_plugin import case_seed, session_seed
    from harness.reconciler.claims import ClaimOperator

    started: list[ClaimOperator] = []

    def make(bugs: Any = (), *, timing: Timing | None = None, start: bool = True) -> ClaimOperator:
        op = ClaimOperator(
            api=kube_paths.api,
            watch=kube_paths.watch,
            namespace=kube_namespace,
            bugs=bugs,
            timing=timing or claim_timing,
            seed=case_seed(session_seed(request.config), request.node.nodeid),
        )
        started.append(op)
        return op.start() if start else op

    yield make
    for op in reversed(started):
        op.stop()
