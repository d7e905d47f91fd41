"""Leak detector for stub shims inside kind nodes: what outlived its pod, and whose pod it was.

The host's detector (:mod:`harness.checks.leaks`) reads the run's own containerd. A kind
node has its own containerd (1.6.20), its own PID namespace and its own stub registry, so
this module asks the node: one ``docker exec`` per look (through the provider's
``exec``) runs :mod:`harness.checks.node_probe` inside it, which answers with the live stub
daemons (by process name), the registry, containerd's tasks and containers, and orphaned
task processes.

A leak, per daemon: a live stub daemon whose container containerd no longer lists as a task
(``shim-process``; the seed c shape when it still answers ``Connect`` with an empty task
map), a daemon with no registry entry and no task (``shim-unregistered``), a registry
entry whose daemon is gone (``registry-stale``), a task process whose daemon is gone
(``task-orphan``).

**Attribution.** A leaked shim's bundle — and with it the OCI annotations — is deleted with
its task, and CRI removes the container record soon after. So the checker *learns* while
the pod lives: every look records, for each stub-runtime container, the pod its CRI labels
and ``io.kubernetes.cri.*`` annotations name (namespace, name, uid; a container's sandbox
id). A shim whose container was never seen is reported with its container id only, as
``unattributed``.

**Unobservable is not clean and not leaked.** A node that cannot be exec'd into, a probe that
fails, or a containerd that does not answer ``ctr tasks ls`` raises
:class:`harness.verdict.Unobservable`; :meth:`NodeLeakChecker.check` turns a last look that
failed into a finding with ``observed=False``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness import journal
from harness.checks.sandbox import GONE, NO_TASK, SandboxFinding, leak_symptom, unobservable
from harness.errors import TooSlow
from harness.verdict import Unobservable
from harness.wait import wait_for

PROBE = ("python3", "-m", "harness.checks.node_probe")
#: a probe (python start-up, ctr, one Connect + State per daemon) on a loaded 2-core box
PROBE_TIMEOUT_S = 30.0


class NodeExec(Protocol):
    """What the checker needs from a cluster (``harness.providers.kube.kind.KindCluster``)."""

    nodes: list[str]

    def exec(
        self, node: str, *argv: str, timeout: float = 60.0, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]: ...


@dataclass(frozen=True)
class PodRef:
    """The pod a container belonged to, from its CRI labels (learnt while it lived)."""

    namespace: str
    name: str
    uid: str = ""
    role: str = ""  # "sandbox" | "container"
    sandbox_id: str = ""
    container: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        what = f"{self.role} " if self.role else ""
        return f"pod {self.key} ({what}{self.container or ''})".replace(" )", ")")


def pod_ref(labels: dict[str, str], cid: str) -> PodRef | None:
    """A :class:`PodRef` from a container's CRI labels/annotations (None without a pod)."""
    ns = labels.get("io.kubernetes.pod.namespace") or labels.get(
        "io.kubernetes.cri.sandbox-namespace", ""
    )
    name = labels.get("io.kubernetes.pod.name") or labels.get("io.kubernetes.cri.sandbox-name", "")
    if not ns or not name:
        return None
    role = labels.get("io.cri-containerd.kind") or labels.get(
        "io.kubernetes.cri.container-type", ""
    )
    sandbox = labels.get("io.kubernetes.cri.sandbox-id", "")
    return PodRef(
        namespace=ns,
        name=name,
        uid=labels.get("io.kubernetes.pod.uid") or labels.get("io.kubernetes.cri.sandbox-uid", ""),
        role=role,
        sandbox_id=sandbox or (cid if role == "sandbox" else ""),
        container=labels.get("io.kubernetes.container.name", ""),
    )


@dataclass(frozen=True)
class NodeLeak:
    """One leaked thing in a node, attributed to its container and (when learnt) its pod."""

    kind: str  # shim-process | shim-unregistered | registry-stale | task-orphan
    node: str
    container_id: str
    pid: int
    evidence: str
    pod: PodRef | None = None
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        who = str(self.pod) if self.pod else "unattributed"
        return (
            f"{self.kind} in {self.node}: container {self.container_id[:12]} pid {self.pid} "
            f"({who}): {self.evidence}"
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-able row (journal, finding facts)."""
        return {
            "kind": self.kind,
            "node": self.node,
            "container_id": self.container_id,
            "pid": self.pid,
            "pod": self.pod.key if self.pod else "",
            "role": self.pod.role if self.pod else "",
            **self.facts,
        }


@dataclass
class NodeView:
    """One look at one node (:mod:`harness.checks.node_probe`'s JSON, parsed)."""

    node: str
    mono: float
    daemons: list[dict[str, Any]]
    registry: list[dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    containers: dict[str, dict[str, Any]]
    orphans: list[dict[str, Any]]

    def daemon_of(self, cid: str) -> dict[str, Any] | None:
        return next((d for d in self.daemons if d.get("id") == cid), None)


def shim_facts(view: NodeView, cid: str) -> dict[str, Any]:
    """The seed-c facts of container ``cid``'s shim, keyed as :mod:`harness.checks.sandbox`'s
    (``shim_alive``, ``shim_answers``, ``shim_status``, ``shim_holds_task``,
    ``containerd_task``, ``bundle``), so its predicates and :func:`leak_symptom` apply."""
    d = view.daemon_of(cid)
    status = GONE if d is None else (d.get("status") or "")
    task = view.tasks.get(cid)
    return {
        "shim_alive": d is not None,
        "shim_pid": int(d["pid"]) if d else 0,
        "shim_answers": bool(d and d.get("answers")),
        "shim_status": status,
        "shim_holds_task": status not in (GONE, NO_TASK, ""),
        "containerd_task": str(task["status"]) if task else "",
        # the stub's registry keeps the bundle path; containerd deletes the directory with
        # the task, and the probe reads no bundle: "present" only while a task is listed
        "bundle": task is not None,
    }


class NodeLeakChecker:
    """Looks into a cluster's nodes for leaked shims; remembers which pod each container was.

    One checker per cluster (the session fixture holds it): its attribution memory spans
    the cases, so a pod learnt while it ran is named when its shim leaks later.
    """

    def __init__(self, cluster: NodeExec, *, namespace: str = "k8s.io") -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.pods: dict[str, PodRef] = {}  # container id -> pod

    # -- reading ---------------------------------------------------------------------------
    def look(self, node: str, *, timeout: float = PROBE_TIMEOUT_S) -> NodeView:
        """One probe of ``node``; learns attributions from it.

        Raises:
            Unobservable: the node could not be exec'd into, the probe failed, or
                containerd did not answer.
        """
        argv = [*PROBE, "--namespace", self.namespace]
        try:
            out = self.cluster.exec(node, *argv, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unobservable(f"node {node}: exec failed: {type(exc).__name__}: {exc}") from None
        if out.returncode != 0:
            err = out.stderr.decode(errors="replace").strip().splitlines()
            raise Unobservable(
                f"node {node}: probe exited {out.returncode}: {err[-1] if err else ''}"
            )
        try:
            raw = json.loads(out.stdout)
        except ValueError as exc:
            raise Unobservable(f"node {node}: probe output unreadable: {exc}") from None
        errors = raw.get("errors") or {}
        if "tasks" in errors:
            raise Unobservable(f"node {node}: containerd's tasks unreadable: {errors['tasks']}")
        view = NodeView(
            node=node,
            mono=float(raw.get("mono", 0.0)),
            daemons=list(raw.get("daemons") or []),
            registry=list(raw.get("registry") or []),
            tasks=dict(raw.get("tasks") or {}),
            containers=dict(raw.get("containers") or {}),
            orphans=list(raw.get("orphans") or []),
        )
        unanswered = [d for d in view.daemons if d.get("answers") is None and d.get("socket")]
        if unanswered:
            d = unanswered[0]
            raise Unobservable(f"node {node}: shim pid {d['pid']} alive, no answer: {d['error']}")
        self._learn(view)
        return view

    def look_all(self) -> list[NodeView]:
        """One look at every node of the cluster (raises like :meth:`look`)."""
        return [self.look(n) for n in self.cluster.nodes]

    def _learn(self, view: NodeView) -> None:
        for cid, c in view.containers.items():
            ref = pod_ref(dict(c.get("pod") or {}), cid)
            if ref is not None and cid not in self.pods:
                self.pods[cid] = ref
                journal.emit(
                    "check",
                    "node_learnt",
                    node=view.node,
                    container=cid,
                    pod=ref.key,
                    role=ref.role,
                )

    def containers_of(self, namespace: str, name: str) -> dict[str, PodRef]:
        """Every container id learnt for pod ``namespace/name`` (sandbox and containers)."""
        return {c: p for c, p in self.pods.items() if (p.namespace, p.name) == (namespace, name)}

    # -- judging ---------------------------------------------------------------------------
    def leaks_in(self, view: NodeView) -> list[NodeLeak]:
        """Every leak of one look (see the module docstring for the kinds)."""
        out: list[NodeLeak] = []
        for d in view.daemons:
            cid = str(d.get("id") or "")
            if cid in view.tasks:
                continue
            facts = shim_facts(view, cid)
            kind = "shim-process" if d.get("registered") else "shim-unregistered"
            what = leak_symptom(facts).removeprefix("leaked shim: ")
            out.append(
                NodeLeak(kind, view.node, cid, int(d["pid"]), what, self.pods.get(cid), facts)
            )
        live = {int(d["pid"]) for d in view.daemons}
        for e in view.registry:
            if int(e.get("pid") or 0) not in live:
                cid = str(e.get("id", ""))
                out.append(
                    NodeLeak(
                        "registry-stale",
                        view.node,
                        cid,
                        int(e.get("pid") or 0),
                        f"registry entry {e.get('registry', '')} of a daemon that is gone",
                        self.pods.get(cid),
                    )
                )
        for o in view.orphans:
            cid = str(o.get("id", ""))
            out.append(
                NodeLeak(
                    "task-orphan",
                    view.node,
                    cid,
                    int(o.get("pid") or 0),
                    f"task process alive, its shim pid {o.get('shim_pid')} is gone",
                    self.pods.get(cid),
                )
            )
        return out

    def find(
        self,
        *,
        pods: Collection[str] | None = None,
        k8s_namespace: str | None = None,
        ignore: Collection[NodeLeak] = (),
    ) -> list[NodeLeak]:
        """Leaks on every node now, filtered to pods (``ns/name``) or a Kubernetes namespace.

        ``ignore``: leaks seen before a case began (a baseline), matched by kind, node,
        container and pid. Unattributed leaks are kept unless a filter is given.

        Raises:
            Unobservable: a node could not be read.
        """
        old = {(x.kind, x.node, x.container_id, x.pid) for x in ignore}
        out = []
        for view in self.look_all():
            for leak in self.leaks_in(view):
                if (leak.kind, leak.node, leak.container_id, leak.pid) in old:
                    continue
                if pods is not None and (leak.pod is None or leak.pod.key not in pods):
                    continue
                if k8s_namespace is not None and (
                    leak.pod is None or leak.pod.namespace != k8s_namespace
                ):
                    continue
                out.append(leak)
        return out

    def check(
        self,
        *,
        timeout: float,
        pods: Collection[str] | None = None,
        k8s_namespace: str | None = None,
        ignore: Collection[NodeLeak] = (),
        check: str = "node leaks",
    ) -> SandboxFinding:
        """Clean as soon as one look finds nothing; a leak only when the last look saw it.

        Facts: ``leaks`` (each leak's summary, with its shim facts), ``pods`` (the pods the
        leaks are attributed to), ``looks`` and ``judged_after`` (seconds). A last look that
        could not read a node gives ``observed=False``.
        """
        state: dict[str, Any] = {"found": [], "error": "", "looks": 0}
        t0 = time.monotonic()

        def look() -> bool:
            state["looks"] += 1
            try:
                found = self.find(pods=pods, k8s_namespace=k8s_namespace, ignore=ignore)
            except Unobservable as exc:
                state["error"] = str(exc)
                return False
            state.update(found=found, error="")
            return not found

        clean = False
        try:
            wait_for(look, timeout=timeout, what="no leak in the kind nodes", interval=0.2)
            clean = True
        except TooSlow:
            pass
        found: list[NodeLeak] = state["found"]
        facts: dict[str, Any] = {
            "leaks": [x.summary() for x in found],
            "pods": sorted({x.pod.key for x in found if x.pod}),
            "unattributed": sum(1 for x in found if x.pod is None),
            "looks": state["looks"],
            "judged_after": round(time.monotonic() - t0, 2),
        }
        if state["error"]:
            return unobservable(
                check, f"node unreadable at the end of {timeout:.1f}s: {state['error']}", **facts
            )
        journal.emit("check", "node_leaks", clean=clean, leaks=[str(x) for x in found])
        if clean:
            return SandboxFinding(check, ok=True, symptom="no shim left in the nodes", facts=facts)
        return SandboxFinding(
            check,
            ok=False,
            symptom=f"{len(found)} leak(s): {found[0]}",
            details=[str(x) for x in found],
            facts=facts,
        )

    # -- clean-up and versions --------------------------------------------------------------
    def reap(self, leaks: Iterable[NodeLeak]) -> list[str]:
        """Kill leaked daemons (and their children) and remove stale registry files.

        For deliberately leaked shims once a case has judged them: containerd forgot them,
        so nothing else ever will. Returns what was done, one line each.
        """
        done = []
        for x in leaks:
            if x.kind in ("shim-process", "shim-unregistered", "task-orphan") and x.pid > 0:
                script = (
                    "import os,signal,sys\n"
                    "pid=int(sys.argv[1])\n"
                    "kids=[int(d) for d in os.listdir('/proc') if d.isdigit() and "
                    "open('/proc/'+d+'/stat').read().rsplit(')',1)[1].split()[1]==str(pid)]\n"
                    "for p in [pid,*kids]:\n"
                    "  try: os.kill(p,signal.SIGKILL)\n"
                    "  except ProcessLookupError: pass\n"
                )
                self.cluster.exec(x.node, "python3", "-c", script, str(x.pid), timeout=30)
                done.append(f"killed {x.kind} pid {x.pid} in {x.node}")
            if x.kind in ("shim-process", "shim-unregistered", "registry-stale"):
                self._remove_files(x)  # a SIGKILLed daemon leaves its files
                done.append(f"removed registry files of {x.container_id[:12]} in {x.node}")
        if done:
            journal.emit("check", "node_reaped", done=done)
        return done

    def _remove_files(self, x: NodeLeak) -> None:
        script = (
            "import glob,json,os,sys\n"
            "for p in glob.glob('/run/reconverge-shim/*.json'):\n"
            "  try: e=json.load(open(p))\n"
            "  except (OSError,ValueError): continue\n"
            "  if e.get('id')==sys.argv[1]:\n"
            "    for q in (p,e.get('socket',''),e.get('control',''),p[:-5]+'.pid'):\n"
            "      try: os.unlink(q)\n"
            "      except OSError: pass\n"
        )
        self.cluster.exec(x.node, "python3", "-c", script, x.container_id, timeout=30)

    def containerd_version(self, node: str | None = None) -> str:
        """The version the node's containerd *binary* reports (``containerd --version``).

        Raises:
            Unobservable: the node could not be asked.
        """
        node = node or self.cluster.nodes[0]
        out = self.cluster.exec(node, "containerd", "--version", timeout=30)
        words = out.stdout.decode(errors="replace").split()
        if out.returncode != 0 or len(words) < 3:
            raise Unobservable(f"containerd --version in {node}: {out.stderr!r}")
        return words[2]
