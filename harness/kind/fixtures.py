"""pytest fixtures of the kind path: one cluster per session, a namespace per case, leak checks.

Loaded as a plugin by ``harness.pytest_plugin``. Why these scopes: a kind cluster costs a
minute or more on 2 shared cores, so there is one per pytest process (``kind_cluster``,
session); isolation is per case — its own namespace, purged afterwards, and a node leak
check before the next case starts (``kind_namespace``), so a shim one case leaked is that
case's finding, never the next one's.

Fixtures and helpers:

- ``kind_cluster`` (session) -> :class:`KindSession`: the provider's cluster, our CRDs, the
  node shim journal switched on, a :class:`~harness.checks.node_leaks.NodeLeakChecker`, and
  the versions read from the node (containerd's binary, kubelet's node status). Missing
  kind / docker / node image: skipped, or **failed** under ``--reconverge-strict``. It is
  its own cluster even under ``--reconverge-kube=kind`` (then ``kube_cluster`` is a second
  one): the kind suites override ``kube_cluster`` with this one, and a session fixture
  asking pytest for ``kube_cluster`` by name would resolve that override — a cycle.
- ``kind_namespace``: a namespace for the case; afterwards every pod in it is deleted and
  the nodes must hold no shim of it within :data:`TEARDOWN_LEAK_S` (a teardown failure
  naming each leak, its pod and node; an unreadable node fails too).
- ``kind_kubelet``: :class:`KindKubelet`, the fake kubelet's interface over the *real*
  kubelet (pods on RuntimeClass ``reconverge-stub``), for suites written against it.
- :class:`KindVerdict`: the case's ``verdict`` with the node's versions added and the suite
  labelled ``<suite>@kind``, so a table with both backends tells the rows apart.

**The shims' journal inside a node.** A stub daemon journals to ``$RECONVERGE_RUN_DIR``;
containerd in a node is started by the node's systemd, which knows no run. The session
gives the node's containerd a drop-in (:data:`JOURNAL_DROPIN`) setting
``RECONVERGE_RUN_DIR=/run/reconverge-node`` and restarts it (its shims survive:
``KillMode=process``) — unless its containerd already runs with it (a node image that ships
the drop-in); every shim it starts from then on journals to
``/run/reconverge-node/journal/`` in the node. ``/run/reconverge-node/shims`` is a symlink
to the stub's default registry ``/run/reconverge-shim``, so the registry stays where the
provider's ``node_shims()`` reads it. :func:`sync_node_journal` copies those files into the
run's ``journal/`` (as ``kind.<node>.<file>``): the node shares the host's monotonic clock
(no time namespace), so :mod:`harness.journal.merge`, fire counts
(:mod:`harness.checks.faults`), timelines and failure bundles take them as they are.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.checks.node_leaks import NodeLeakChecker
    from harness.providers.kube.api import Kube
    from harness.providers.kube.kind import KindCluster
    from harness.run import Run

NODE_RUN_DIR = "/run/reconverge-node"
NODE_SHIMS = "/run/reconverge-shim"
JOURNAL_DROPIN = "/etc/systemd/system/containerd.service.d/50-reconverge-journal.conf"
#: how long a purged namespace's shims may take to go (kubelet kills, CRI deletes, shim exits)
TEARDOWN_LEAK_S = 60.0
POD_RUNNING_S = 120.0

_CLUSTER_ERROR = pytest.StashKey[str]()


@functools.lru_cache(maxsize=1)
def kind_missing() -> str | None:
    """Why kind cases cannot run here (None when they can); asked once per process.

    ``needs("kind")`` in the plugin calls it: docker and dockerd, kind, the node image.
    """
    from harness.providers.kube.kind import KindProvider

    a = KindProvider().availability()
    return None if a else f"kind {a.reason}"


# -- the shims' journal inside the nodes ----------------------------------------------------
def enable_node_journal(cluster: KindCluster, node: str, *, timeout: float = 120.0) -> float:
    """Make ``node``'s containerd (and so every shim it starts) journal; seconds spent.

    Nothing to do when its containerd already runs with the variable (a node image that
    ships the drop-in); otherwise the drop-in is written and containerd restarted.

    Raises:
        ProviderFailed: the drop-in could not be written or containerd did not come back.
    """
    from harness import journal
    from harness.errors import ProviderFailed
    from harness.wait import wait_for

    t0 = time.monotonic()
    has = cluster.exec(
        node, "sh", "-c", 'tr "\\0" "\\n" < /proc/$(pidof containerd)/environ', timeout=30
    )
    if f"RECONVERGE_RUN_DIR={NODE_RUN_DIR}".encode() in has.stdout.split(b"\n"):
        journal.emit("kind", "node_journal_enabled", node=node, dir=NODE_RUN_DIR, by="image")
        return time.monotonic() - t0  # the node image switched it on from boot
    script = (
        f"set -e; mkdir -p {NODE_RUN_DIR}/journal {NODE_SHIMS}; "
        f"ln -sfn {NODE_SHIMS} {NODE_RUN_DIR}/shims; "
        f"mkdir -p {Path(JOURNAL_DROPIN).parent}; "
        f"printf '[Service]\\nEnvironment=RECONVERGE_RUN_DIR={NODE_RUN_DIR}\\n' "
        f"> {JOURNAL_DROPIN}; "
        "systemctl daemon-reload; systemctl restart containerd; systemctl is-active containerd"
    )
    out = cluster.exec(node, "sh", "-c", script, timeout=timeout)
    if out.returncode != 0:
        raise ProviderFailed(
            f"enabling the shim journal in {node}: {out.stderr.decode(errors='replace').strip()}",
            fix="see containerd.log in the run's logs/kind directory",
        )
    wait_for(
        lambda: cluster.exec(node, "ctr", "version", timeout=30).returncode == 0,
        timeout=timeout,
        what=f"containerd in {node} answering after its restart",
        interval=0.5,
    )
    took = time.monotonic() - t0
    journal.emit(
        "kind", "node_journal_enabled", node=node, dir=NODE_RUN_DIR, seconds=round(took, 2)
    )
    return took


def sync_node_journal(cluster: KindCluster, run_dir: Path) -> int:
    """Copy every node's shim journal files into ``<run>/journal/``; files copied.

    Whole files each time (they only grow): idempotent, and a failure bundle written after
    any sync holds the shims' records. A node that cannot be read copies nothing.
    """
    import tarfile  # here, not at the top: every pytest run imports this module

    jdir = run_dir / "journal"
    jdir.mkdir(parents=True, exist_ok=True)
    n = 0
    for node in cluster.nodes:
        out = cluster.exec(node, "tar", "-C", f"{NODE_RUN_DIR}/journal", "-cf", "-", ".")
        if out.returncode != 0 or not out.stdout:
            continue
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if not member.isfile() or not name.endswith(".jsonl"):
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                (jdir / f"kind.{node}.{name}").write_bytes(f.read())
                n += 1
    return n


# -- the session's cluster --------------------------------------------------------------------
@dataclass
class KindSession:
    """The session's kind cluster and what cases read from it."""

    cluster: KindCluster
    checker: NodeLeakChecker
    run: Run
    versions: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return self.cluster.nodes[0]

    def truth(self) -> Kube:
        """A direct client to kind's API server (no proxy): the truth."""
        return self.cluster.truth()

    def sync_journal(self) -> int:
        """The nodes' shim journals into the run's journal (see the module docstring)."""
        return sync_node_journal(self.cluster, self.run.dir)


def _kubelet_version(truth: Kube) -> str:
    from harness.providers.kube.kind import NODES

    items, _ = truth.list(NODES)
    versions = {n["status"]["nodeInfo"]["kubeletVersion"] for n in items}
    return ",".join(sorted(versions)) or "-"


@pytest.fixture(scope="session")
def kind_cluster(reconverge_run: Run, request: pytest.FixtureRequest) -> Iterator[KindSession]:
    """One kind cluster for the session (see the module docstring)."""
    from harness import journal
    from harness.checks.node_leaks import NodeLeakChecker
    from harness.errors import ReconvergeError
    from harness.providers.kube import crds
    from harness.providers.kube.kind import KindProvider
    from harness.pytest_plugin import skip_unless_strict

    failed = request.config.stash.get(_CLUSTER_ERROR, None)
    if failed:
        skip_unless_strict(request.config, failed)
    why = kind_missing()
    if why:
        skip_unless_strict(request.config, f"needs kind: {why}")
    t0 = time.monotonic()
    try:
        cluster: KindCluster = KindProvider().start(reconverge_run)
        seconds = {"create": round(time.monotonic() - t0, 1)}
        seconds.update({k: round(v, 1) for k, v in cluster.timings.items()})
        truth = cluster.truth()
        try:
            crds.install(truth)
            for node in cluster.nodes:
                seconds[f"journal {node}"] = round(enable_node_journal(cluster, node), 1)
            checker = NodeLeakChecker(cluster)
            versions = {
                **{k: str(v) for k, v in cluster.versions.items()},
                "containerd": checker.containerd_version(),
                "kubelet": _kubelet_version(truth),
            }
        finally:
            truth.close()
    except ReconvergeError as exc:
        # every later kind case fails/skips at once instead of retrying a minute of bring-up
        request.config.stash[_CLUSTER_ERROR] = f"kind cluster failed to start: {exc.message}"
        raise
    session = KindSession(cluster, checker, reconverge_run, versions, seconds)
    journal.emit("kind", "session_cluster", versions=versions, seconds=seconds)
    yield session
    session.sync_journal()
    cluster.stop()


@pytest.fixture
def kind_truth(kind_cluster: KindSession) -> Iterator[Kube]:
    """A direct client to kind's API server (no proxy)."""
    truth = kind_cluster.truth()
    yield truth
    truth.close()


@pytest.fixture
def kind_namespace(
    kind_cluster: KindSession, kind_truth: Kube, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A namespace for this case; purged afterwards, and no shim of it may stay in a node."""
    from harness import journal
    from harness.providers.kube import namespaces
    from harness.providers.kube.api import PODS
    from harness.reconciler.claims.model import CNCLAIMS, CNCLAIMSETS, CNPOOLS
    from harness.verdict import Unobservable

    name = namespaces.name_for(request.node.nodeid, prefix="kind")
    namespaces.create(kind_truth, name, run_id=kind_cluster.run.id)
    yield name
    checker = kind_cluster.checker
    try:
        checker.look_all()  # learn every container still there: a leak is then attributed
    except Unobservable as exc:
        journal.emit("check", "node_unreadable", error=str(exc))
    namespaces.purge(kind_truth, name, [CNCLAIMSETS, CNCLAIMS, CNPOOLS, PODS], timeout=60)
    found = checker.check(timeout=TEARDOWN_LEAK_S, k8s_namespace=name, check="teardown leaks")
    kind_cluster.sync_journal()
    if not found.observed:
        pytest.fail(f"kind teardown: could not check the nodes for leaks: {found.symptom}")
    if not found.ok:
        pytest.fail("kind teardown: shims of namespace " + name + " left:\n" + str(found))


# -- the real kubelet behind the fake kubelet's interface --------------------------------------
def stub_pod(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    grace: int = 2,
) -> dict[str, Any]:
    """A pod on RuntimeClass ``reconverge-stub``: the stub runs ``sleep`` as its task.

    ``command`` is set too, so the same pod would run under runc with the busybox image.
    """
    from harness.providers.kube.kind import POD_IMAGE, RUNTIME_CLASS

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "runtimeClassName": RUNTIME_CLASS,
            "terminationGracePeriodSeconds": grace,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "cn",
                    "image": POD_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def _running(pod: dict[str, Any]) -> bool:
    """Running, Ready, every container started and ready, an IP: kubelet's last status write."""
    st = pod.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    cs = st.get("containerStatuses") or []
    return (
        st.get("phase") == "Running"
        and conds.get("Ready") == "True"
        and conds.get("ContainersReady") == "True"
        and bool(cs)
        and all(c.get("ready") and c.get("started") for c in cs)
        and bool(st.get("podIP"))
    )


def wait_running(truth: Kube, ns: str, name: str, timeout: float = POD_RUNNING_S) -> dict:
    """The pod once :func:`_running` holds (the wait prints the last phase/reasons seen)."""
    from harness.providers.kube.api import PODS
    from harness.wait import wait_for

    def look() -> dict | str:
        pod = truth.get(PODS, ns, name)
        if pod is None:
            return "no such pod"
        if _running(pod):
            return pod
        st = pod.get("status") or {}
        waiting = [
            f"{c['name']}: {(c.get('state') or {}).get('waiting', {}).get('reason', '')}"
            for c in st.get("containerStatuses") or []
        ]
        return f"{st.get('phase')} {waiting}"

    return wait_for(
        look,
        timeout=timeout,
        what=f"pod {ns}/{name} Running and Ready on the real kubelet",
        interval=0.2,
        accept=lambda v: isinstance(v, dict),
    )


class KindKubelet:
    """:class:`harness.providers.kubelet.FakeKubelet`'s interface, played by kind's real kubelet.

    ``create_pod`` creates the pod on the stub RuntimeClass (scheduled by kube-scheduler,
    run by kubelet → CRI → containerd 1.6.20 → the stub) and returns once kubelet wrote its
    final Running/Ready status, so a case that starts its operator afterwards sees no status
    change it did not cause. ``vanish`` is a grace-0 DELETE (the API object goes at once;
    kubelet then kills the containers). Steps a real kubelet takes on its own
    (``set_ready``, ``set_phase``, ``finish_delete``) are not offered.
    """

    def __init__(self, session: KindSession, kube: Kube, namespace: str) -> None:
        self.session = session
        self.kube = kube
        self.namespace = namespace

    def create_pod(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        scheduled: bool = True,
        ready: bool = True,
        phase: str = "Running",
    ) -> dict[str, Any]:
        from harness import journal
        from harness.providers.kube.api import PODS

        if not (scheduled and ready and phase == "Running"):
            raise NotImplementedError(
                "the real kubelet brings a pod to Running/Ready on its own; "
                f"scheduled={scheduled} ready={ready} phase={phase} is a fake-kubelet step"
            )
        journal.emit("kubelet", "create", ns=self.namespace, pod=name, real=True)
        self.kube.create(
            PODS, self.namespace, stub_pod(name, labels=labels, annotations=annotations)
        )
        pod = wait_running(self.kube, self.namespace, name)
        ids = [c.get("containerID", "") for c in pod["status"].get("containerStatuses") or []]
        journal.emit(
            "kubelet",
            "run",
            ns=self.namespace,
            pod=name,
            real=True,
            containers=ids,
            node=pod["spec"].get("nodeName", ""),
        )
        return pod

    def vanish(self, name: str) -> bool:
        from harness import journal
        from harness.providers.kube.api import PODS

        journal.emit("kubelet", "vanish", ns=self.namespace, pod=name, real=True)
        return self.kube.delete(PODS, self.namespace, name, grace_seconds=0) is not None


@pytest.fixture
def kind_kubelet(kind_cluster: KindSession, kind_truth: Kube, kind_namespace: str) -> KindKubelet:
    """The real kubelet of the session's kind cluster, in this case's namespace."""
    return KindKubelet(kind_cluster, kind_truth, kind_namespace)


# -- verdicts of kind cases -----------------------------------------------------------------------
class KindVerdict:
    """The plugin's verdict recorder, with the node's versions and ``@kind`` in the suite."""

    def __init__(self, inner: Any, session: KindSession, label: str = "@kind") -> None:
        self._inner = inner
        self._session = session
        self._label = label

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _versions(self, given: dict[str, str] | None) -> dict[str, str]:
        keep = ("containerd", "kubelet", "node image", "kind")
        return {k: v for k, v in self._session.versions.items() if k in keep} | dict(given or {})

    def judge(self, *, suite: str, versions: dict[str, str] | None = None, **kw: Any) -> Any:
        """``verdict.judge`` (rules of :mod:`harness.verdict`) with the kind label and versions."""
        self._session.sync_journal()  # evidence and failure bundles include the shims' records
        return self._inner.judge(suite=suite + self._label, versions=self._versions(versions), **kw)

    def record(self, *, suite: str, versions: dict[str, str] | None = None, **kw: Any) -> Any:
        """``verdict.record`` with the kind label and versions."""
        return self._inner.record(
            suite=suite + self._label, versions=self._versions(versions), **kw
        )


def shim_replies(
    run_dir: Path, since: float, ids: set[str], *, outcome: str | None = "ok"
) -> dict[str, int]:
    """How many ``<method>`` replies the shims of ``ids`` journaled since ``since``.

    From the nodes' shim journals (call :meth:`KindSession.sync_journal` first): the proof
    that kubelet -> CRI -> containerd really drove a pod's shims (Create, Start, Delete,
    Shutdown...). ``outcome``: only replies with that outcome (None: any).
    """
    from collections import Counter

    from harness.journal import merge

    n: Counter[str] = Counter()
    for r in merge.since(merge.load(run_dir), since):
        if r.component != "shim" or r.event != "reply" or r.fields.get("id") not in ids:
            continue
        if outcome is None or r.fields.get("outcome") == outcome:
            n[str(r.fields.get("method"))] += 1
    return dict(n)
