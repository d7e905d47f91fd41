"""The ``kind`` provider: a throw-away kind cluster on the run's own dockerd, fully offline.

Why it works offline: the node image is ours (``reconverge build kind-node``,
:mod:`harness.kind`), loaded into the run's dockerd before ``kind create cluster --image``
(kind pulls only when ``docker inspect`` misses). Why the run's own dockerd
(:mod:`harness.providers.docker`): it has the capability-dropping runtime kind's
``--privileged`` needs on this machine, and the janitor owns everything on it.

What ``start`` does, each step bounded and named in the error when it fails:

1. load the node image, create the run's bridge network (``KIND_EXPERIMENTAL_DOCKER_NETWORK``);
2. register the node containers and the kubeconfig with the janitor, *then* create them;
3. ``kind create cluster`` with the API server on a pinned free ``127.0.0.1`` port (kubeadm
   puts 127.0.0.1 in the certificate's SANs, so a toxiproxy listener on another loopback
   port verifies like the direct address), ``disableDefaultCNI`` (the node image writes a
   bridge/host-local conflist per node) and ``kubeProxyMode: none`` (no suite uses
   Services; see ``fixtures/kind/kubeadm-patches.yaml``);
4. wait for every node ``Ready``, create RuntimeClass ``reconverge-stub`` (CRI handler
   ``reconverge-stub`` → ``io.containerd.stub.v2`` in the node's containerd) and wait for a
   smoke pod on it to be ``Running``.

On failure the nodes' logs (kind's output with kubeadm's, the kubelet and containerd
journals, systemd's boot log) land in ``<run>/logs/kind/``, which failure bundles copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from harness import fixtures_dir, journal
from harness.build import progress
from harness.errors import ProviderFailed, ReconvergeError, TooSlow
from harness.kind import node_image
from harness.providers import docker
from harness.providers.kube import kubeconfig
from harness.providers.kube.api import PODS, ApiException, Resource
from harness.providers.kube.base import COMPACT, RESTART, Availability, Cluster, Provider
from harness.providers.process import ensure_port_free, free_port
from harness.run import Run
from harness.wait import wait_for

KIND_VERSION = "v0.33.0"
RUNTIME_CLASS = "reconverge-stub"
STUB_HANDLER = "reconverge-stub"
POD_IMAGE = "reconverge.local/busybox:1"
FIXTURES = fixtures_dir.path("kind")
#: 2 shared cores: kubeadm init alone has taken minutes when Go builds run beside it.
CREATE_TIMEOUT = 900.0
READY_TIMEOUT = 240.0
POD_TIMEOUT = 180.0
BUILD_FIX = "reconverge build kind-node"
#: Runs in the node (python3, no YAML library): give kube-apiserver's static pod manifest a
#: new restart annotation, written beside it and renamed into place (kubelet never reads a
#: half-written manifest).
BUMP_MANIFEST = """
import os, re, sys
path = "/etc/kubernetes/manifests/kube-apiserver.yaml"
text = open(path).read()
line = '    reconverge.io/restart: "%s"' % sys.argv[1]
if "reconverge.io/restart:" in text:
    text = re.sub(r'(?m)^    reconverge.io/restart: .*$', line, text)
else:
    text = text.replace("  annotations:\\n", "  annotations:\\n" + line + "\\n", 1)
tmp = "/etc/kubernetes/kube-apiserver.yaml.next"
open(tmp, "w").write(text)
os.rename(tmp, path)
"""
#: Runs in a node: the stub's registry entries, each with the pod its bundle belongs to.
READ_SHIMS = """
import glob, json, os, sys
out = []
for path in sorted(glob.glob("/run/reconverge-shim/*.json")):
    try:
        entry = json.load(open(path))
    except (OSError, ValueError):
        continue
    try:
        ann = json.load(open(os.path.join(entry.get("bundle", ""), "config.json")))
        ann = ann.get("annotations") or {}
        ns = ann.get("io.kubernetes.cri.sandbox-namespace")
        name = ann.get("io.kubernetes.cri.sandbox-name")
        if ns and name:
            entry["pod"] = ns + "/" + name
        entry["container_type"] = ann.get("io.kubernetes.cri.container-type", "")
    except (OSError, ValueError):
        pass
    out.append(entry)
json.dump(out, sys.stdout)
"""
NODES = Resource("Node", "", "v1", "nodes", namespaced=False)
SERVICE_ACCOUNTS = Resource("ServiceAccount", "", "v1", "serviceaccounts")
RUNTIME_CLASSES = Resource("RuntimeClass", "node.k8s.io", "v1", "runtimeclasses", namespaced=False)


def locate_kind() -> Path | None:
    """``kind``: $RECONVERGE_KIND_BIN, the build cache (v0.33.0), ``~/go/bin`` or PATH."""
    env = os.environ.get("RECONVERGE_KIND_BIN")
    if env:
        return Path(env) if Path(env).exists() else None
    try:
        from harness import build

        found = build.locate("kind", KIND_VERSION)
        if found is not None:
            return Path(found)
    except Exception:
        pass
    gobin = Path(os.environ.get("GOBIN") or Path.home() / "go" / "bin") / "kind"
    if gobin.exists():
        return gobin
    w = shutil.which("kind")
    return Path(w) if w else None


def kind_version(kind: Path) -> str:
    try:
        out = subprocess.run(
            [str(kind), "version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "-"
    return (out.stdout or out.stderr).strip() or "-"


def config_document(api_port: int, *, nodes: int = 1, stub: Path | None = None) -> dict[str, Any]:
    """The kind cluster config: API server on a pinned loopback port, our CNI, no kube-proxy.

    ``stub``: the stub tree's ``opt/reconverge``, mounted read-only at the same place in
    every node (the shim's entry points in the image import from there).
    """
    patches = yaml.safe_load((FIXTURES / "kubeadm-patches.yaml").read_text())
    node: dict[str, Any] = {}
    if stub is not None:
        node["extraMounts"] = [
            {"hostPath": str(stub), "containerPath": node_image.layers.STUB_MOUNT, "readOnly": True}
        ]
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {
            "apiServerAddress": "127.0.0.1",
            "apiServerPort": api_port,
            "disableDefaultCNI": True,
            "kubeProxyMode": "none",
            "podSubnet": "10.244.0.0/16",
        },
        "kubeadmConfigPatches": patches,
        "nodes": [{"role": "control-plane", **node}]
        + [{"role": "worker", **node} for _ in range(nodes - 1)],
    }


def node_names(cluster: str, nodes: int) -> list[str]:
    """kind's container names: ``<c>-control-plane``, ``<c>-worker``, ``<c>-worker2``…"""
    workers = [f"{cluster}-worker" + (str(i) if i > 1 else "") for i in range(1, nodes)]
    return [f"{cluster}-control-plane", *workers]


def smoke_pod(name: str) -> dict[str, Any]:
    """A pod on the stub runtime: the stub runs ``sleep`` as a real process in the node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "reconverge"}},
        "spec": {
            "runtimeClassName": RUNTIME_CLASS,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": POD_IMAGE, "imagePullPolicy": "Never"}],
        },
    }


def failure_cause(output: str) -> str:
    """The line of ``kind create``'s output that says why: kubeadm's own error if kind quoted
    the failing command's output (``Command Output:``), else kind's ``ERROR:`` line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    kind_error = next((ln for ln in reversed(lines) if ln.startswith("ERROR:")), "")
    quoted: list[str] = []
    inside = False
    for ln in lines:
        if ln.startswith("Command Output:"):
            inside, ln = True, ln.removeprefix("Command Output:").strip()
        elif ln.startswith("Stack Trace:"):
            inside = False
        if inside and ln:
            quoted.append(ln)
    kubeadm = [
        ln
        for ln in quoted
        if ln.lower().startswith("error") or "[ERROR" in ln or "error execution phase" in ln
    ]
    if kubeadm:
        step = re.search(r'command "docker exec [^"]*? (\S+) (kubeadm \w+)', kind_error)
        where = f"{step.group(2)} in {step.group(1)}: " if step else ""
        return where + kubeadm[-1]
    return kind_error or (lines[-1] if lines else "no output")


class KindProvider(Provider):
    """Create and delete a kind cluster per run, on the run's own dockerd."""

    name = "kind"

    def availability(self) -> Availability:
        if locate_kind() is None:
            return Availability(
                False,
                f"unavailable: kind not installed (reconverge build ensure kind@{KIND_VERSION})",
            )
        for tool in ("docker", "dockerd"):
            if shutil.which(tool) is None:
                return Availability(False, f"unavailable: {tool} missing (./ci/bootstrap)")
        try:
            docker.runtime_path()
        except ReconvergeError as exc:
            return Availability(False, f"unavailable: {exc.message}")
        if node_image.cached() is None:
            why = node_image.missing() or "not built"
            return Availability(False, f"unavailable: no node image ({why}; {BUILD_FIX})")
        return Availability(True)

    def rows(self) -> list[dict[str, str]]:
        kind = locate_kind()
        a = self.availability()
        rows = [
            {
                "component": "kind",
                "status": "ok" if kind else "optional",
                "version": kind_version(kind) if kind else "-",
                "path": str(kind) if kind else "-",
                "backend": "kind" if a else f"kind ({a.reason})",
            }
        ]
        bins = node_image.bundle_dir()
        for b in ("kubelet", "kubeadm"):
            rows.append(
                {
                    "component": b,
                    "status": "ok" if bins else "optional",
                    "version": node_image.layers.KUBERNETES_VERSION if bins else "-",
                    "path": str(bins / b) if bins else "-",
                    "backend": "kind node"
                    if bins
                    else "kind node (reconverge build ensure kubernetes)",
                }
            )
        image = node_image.cached()
        rows.append(
            {
                "component": "kind node image",
                "status": "ok" if image else "optional",
                "version": image.tag if image else "-",
                "path": str(image.trees[-1].parent) if image else "-",
                "backend": "kind"
                if image
                else f"not built: {BUILD_FIX} ({node_image.missing() or 'stale'})",
            }
        )
        return rows

    def start(self, run: Run, **options: Any) -> KindCluster:
        a = self.availability()
        if not a:
            fix = BUILD_FIX
            if "kind not installed" in a.reason:
                fix = f"reconverge build ensure kind@{KIND_VERSION}"
            elif "missing" in a.reason or "not installed" in a.reason:
                fix = "./ci/bootstrap"
            raise ProviderFailed(f"kind {a.reason}", fix=fix)
        cluster = KindCluster.create(run, **options)
        return cluster


class KindCluster(Cluster):
    """A kind cluster owned by the run; :meth:`stop` deletes it.

    For suites: ``nodes`` (container names, control plane first), :meth:`exec` (a command
    in a node), :meth:`node_shims` (the stub's registry entries in a node),
    :meth:`node_tasks` (containerd's tasks in a node's ``k8s.io`` namespace),
    :meth:`node_processes` (pid and argv of every process in a node),
    :meth:`restart_apiserver`, :meth:`compact`, ``engine`` (the run's dockerd).
    """

    def __init__(self, run: Run, name: str, kind: Path, eng: docker.DockerEngine) -> None:
        # one directory per cluster: a run may hold several (a session's cluster and a
        # test's own), and a shared creds/ca.crt was overwritten by the later cluster's CA
        workdir = run.path("kube", name, mkdir=True)
        super().__init__(
            backend="kind",
            creds=kubeconfig.Credentials(server="https://127.0.0.1:0"),
            kubeconfig=workdir / "kubeconfig",
            capabilities=frozenset({RESTART, COMPACT}),
        )
        self.run = run
        self.name = name
        self.kind = kind
        self.engine = eng
        self.workdir = workdir
        self.nodes: list[str] = []
        self.api_port = 0
        self.network: docker.Network | None = None
        self.timings: dict[str, float] = {}
        self.peak_memory_bytes = 0

    # -- bring-up -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        run: Run,
        *,
        nodes: int = 1,
        api_port: int | None = None,
        smoke: bool = True,
        timeout: float = CREATE_TIMEOUT,
        extra_patches: list[str] | None = None,
        **_ignored: Any,
    ) -> KindCluster:
        """Everything in the module docstring, in order; returns once a stub pod ran.

        ``extra_patches``: more kubeadmConfigPatches (YAML documents) after ours.

        Raises:
            PortInUse: ``api_port`` is taken (checked before anything starts).
            ProviderFailed: a step failed; the message names it and where the logs are.
        """
        if nodes < 1:
            raise ReconvergeError(f"a kind cluster needs at least one node, not {nodes}")
        image = node_image.cached()
        if image is None:
            raise ProviderFailed("kind: no node image", fix=BUILD_FIX)
        kind = locate_kind()
        assert kind is not None
        port = int(api_port or free_port())
        ensure_port_free(port, what="kind API server")  # before anything starts
        t0 = time.monotonic()
        eng = docker.engine(run, private=True, seed=node_image.seed(image))
        self = cls(run, f"rcv-{run.id}", kind, eng)
        self.versions = {"kind": kind_version(kind), "node image": image.tag, **image.versions}
        self.timings["dockerd"] = time.monotonic() - t0
        self.timings["image_load"] = node_image.load(image, eng.env())
        self.network = docker.network(run, eng)
        self.api_port = port
        self.nodes = node_names(self.name, nodes)
        for node in self.nodes:  # registered before they exist: a SIGKILL sweep removes them
            run.janitor.container(node, docker_host=eng.host, private=True)
        run.janitor.path(self.kubeconfig)
        run.janitor.callback(f"kind delete {self.name}", self.stop)
        cfg = self.workdir / "kind.yaml"
        stub = node_image.stub_tree() / node_image.layers.STUB_MOUNT.lstrip("/")
        self.versions["stub"] = stub.parents[1].name
        doc = config_document(self.api_port, nodes=nodes, stub=stub)
        doc["kubeadmConfigPatches"] += list(extra_patches or [])
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        journal.emit("kube", "kind_create", cluster=self.name, api_port=self.api_port, nodes=nodes)
        with PeakMemory(eng.cgroup_parent) as sampler:
            t1 = time.monotonic()
            self._kind_create(cfg, image.tag, timeout=timeout)
            self.timings["kind_create"] = time.monotonic() - t1
            self._after_create(nodes=nodes, smoke=smoke)
        self.peak_memory_bytes = sampler.peak
        self.bring_up_seconds = time.monotonic() - t0
        journal.emit(
            "kube",
            "kind_ready",
            **self.describe(),
            timings={k: round(v, 1) for k, v in self.timings.items()},
            peak_memory_mib=round(self.peak_memory_bytes / 2**20),
        )
        return self

    def _after_create(self, *, nodes: int, smoke: bool) -> None:
        """Credentials, pod routes, nodes Ready, RuntimeClass, stub smoke pod; logs on failure."""
        try:
            self.creds = kubeconfig.load(self.kubeconfig, workdir=self.workdir / "creds")
            if nodes > 1:
                self._route_pod_subnets()
            t2 = time.monotonic()
            self._wait_nodes_ready(READY_TIMEOUT)
            self.timings["nodes_ready"] = time.monotonic() - t2
            self._runtime_class()
            self._wait_default_service_account(POD_TIMEOUT)
            if smoke:
                t3 = time.monotonic()
                self._smoke(POD_TIMEOUT)
                self.timings["stub_pod_running"] = time.monotonic() - t3
        except ReconvergeError as exc:
            where = self.collect_logs()
            self.stop()
            raise ProviderFailed(f"{exc.message} (node logs: {where})", fix=exc.fix) from None
        except (ApiException, OSError) as exc:
            where = self.collect_logs()
            self.stop()
            why = getattr(exc, "reason", None) or str(exc)
            raise ProviderFailed(
                f"kind cluster {self.name}: API call after create failed: {why}"
                f" (node logs: {where})"
            ) from None

    def _kind(self, *args: str, timeout: float, log: Path | None = None) -> int:
        """Run ``kind`` against our dockerd and network (output to ``log``); exit code."""
        env = self.run.child_env(
            {
                "DOCKER_HOST": self.engine.host,
                "KIND_EXPERIMENTAL_DOCKER_NETWORK": self.network.name if self.network else "",
            }
        )
        log = log or self.run.path("logs", mkdir=True) / "kind.log"
        with open(log, "ab") as f:
            f.write(f"$ kind {' '.join(args)}\n".encode())
            f.flush()
            try:
                return subprocess.run(
                    [str(self.kind), *args],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                return -1

    def _kind_create(self, cfg: Path, image: str, *, timeout: float) -> None:
        log = self.run.path("logs", mkdir=True) / "kind-create.log"
        beat = progress.Heartbeat(
            f"create cluster {self.name}", label="kind", detail=progress.last_line(log)
        )
        with beat:  # ~30 s of silence otherwise (``reconverge up --kube kind``, CI logs)
            code = self._kind_create_cmd(cfg, image, timeout=timeout, log=log)
        if code == 0:
            return
        where = self.collect_logs()
        self.stop()  # --retain kept the nodes for their logs; they are not needed any more
        cause = failure_cause(log.read_text(errors="replace"))
        what = "timed out" if code == -1 else f"failed (exit {code})"
        raise ProviderFailed(
            f"kind create cluster {what}: {cause[:300]} (logs: {where})",
            fix="read kubelet.log in the logs directory; reconverge janitor --sweep",
        )

    def _kind_create_cmd(self, cfg: Path, image: str, *, timeout: float, log: Path) -> int:
        return self._kind(
            "create",
            "cluster",
            "--name",
            self.name,
            "--image",
            image,
            "--config",
            str(cfg),
            "--kubeconfig",
            str(self.kubeconfig),
            "--retain",
            "-v",
            "1",
            timeout=timeout,
            log=log,
        )

    def exec(
        self, node: str, *argv: str, timeout: float = 60.0, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` in ``node`` (``docker exec --privileged``); never raises on exit code."""
        return self.engine.docker(
            "exec", "-i", "--privileged", node, *argv, timeout=timeout, input=input
        )

    def _check(self, node: str, *argv: str, timeout: float = 60.0) -> str:
        out = self.exec(node, *argv, timeout=timeout)
        if out.returncode != 0:
            raise ProviderFailed(
                f"{' '.join(argv)} in {node} failed: {out.stderr.decode(errors='replace').strip()}"
            )
        return out.stdout.decode(errors="replace")

    def node_ip(self, node: str) -> str:
        out = self.engine.docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node
        )
        return out.stdout.decode().strip()

    def _route_pod_subnets(self) -> None:
        """Each node's pod /24 (10.244.<last byte of its IP>) routed via that node's IP.

        Why: the per-node bridge CNI has no overlay; a route per peer is what kindnetd would
        have added.
        """
        ips = {n: self.node_ip(n) for n in self.nodes}
        for node in self.nodes:
            for peer, ip in ips.items():
                if peer != node:
                    subnet = f"10.244.{ip.rsplit('.', 1)[1]}.0/24"
                    self._check(node, "ip", "route", "replace", subnet, "via", ip)

    def _wait_nodes_ready(self, timeout: float) -> None:
        kube = self.truth()

        def ready() -> list[str] | bool:
            items, _ = kube.list(NODES)
            states = {
                n["metadata"]["name"]: next(
                    (
                        c.get("status", "?")
                        for c in n.get("status", {}).get("conditions") or []
                        if c.get("type") == "Ready"
                    ),
                    "?",
                )
                for n in items
            }
            if len(states) == len(self.nodes) and all(v == "True" for v in states.values()):
                return True
            return [f"{k}={v}" for k, v in sorted(states.items())] or ["no nodes"]

        try:
            wait_for(
                ready,
                timeout=timeout,
                what="kind nodes Ready",
                interval=1.0,
                accept=lambda v: v is True,
            )
        except TooSlow as exc:
            raise ProviderFailed(exc.message, fix="see kubelet.log in the logs directory") from None

    def _runtime_class(self) -> None:
        """RuntimeClass ``reconverge-stub`` → CRI handler ``reconverge-stub`` (idempotent)."""
        body = {"metadata": {"name": RUNTIME_CLASS}, "handler": STUB_HANDLER}
        try:
            self.truth().create(RUNTIME_CLASSES, None, body)
        except ApiException as exc:
            if exc.status != 409:
                raise ProviderFailed(
                    f"creating RuntimeClass {RUNTIME_CLASS}: {exc.reason}"
                ) from None

    def _wait_default_service_account(self, timeout: float) -> None:
        """Admission refuses every pod in ``default`` until kube-controller-manager made
        the namespace's ServiceAccount: a cluster handed to a suite must accept pods."""
        kube = self.truth()
        try:
            wait_for(
                lambda: kube.get(SERVICE_ACCOUNTS, "default", "default") is not None,
                timeout=timeout,
                what="ServiceAccount default/default (kube-controller-manager)",
                interval=0.5,
            )
        except TooSlow as exc:
            raise ProviderFailed(
                exc.message, fix="see the kube-controller-manager pod log"
            ) from None

    def _smoke(self, timeout: float) -> None:
        """A pod on the stub runtime must reach Running; then it is deleted again."""
        kube = self.truth()
        name = "reconverge-stub-smoke"
        kube.create(PODS, "default", smoke_pod(name))

        def running() -> str | bool:
            pod = kube.get(PODS, "default", name) or {}
            status = pod.get("status", {})
            if status.get("phase") == "Running":
                return True
            waiting = [
                f"{s['name']}: {s['state']['waiting'].get('reason')}"
                for s in status.get("containerStatuses") or []
                if "waiting" in (s.get("state") or {})
            ]
            conds = [
                f"{c.get('type')}={c.get('status')} {c.get('message', '')}".strip()
                for c in status.get("conditions") or []
            ]
            return f"{status.get('phase')} {waiting or conds}"

        try:
            wait_for(
                running,
                timeout=timeout,
                what=f"pod {name} on RuntimeClass {RUNTIME_CLASS} Running",
                interval=0.5,
                accept=lambda v: v is True,
            )
        except TooSlow as exc:
            raise ProviderFailed(
                exc.message, fix="see containerd.log in the logs directory"
            ) from None
        try:
            kube.delete(PODS, "default", name, grace_seconds=0)
        except ApiException:
            pass

    # -- what suites read -----------------------------------------------------------------
    def node_shims(self, node: str | None = None) -> list[dict[str, Any]]:
        """The stub's registry entries in a node (``/run/reconverge-shim/*.json``).

        Each entry also gets ``pod`` (``namespace/name``) and ``container_type``
        (``sandbox``/``container``) from the CRI annotations in its bundle's config.json,
        while the bundle exists (containerd removes it on delete): capture them while the
        pod runs to attribute a later leak.
        """
        node = node or self.nodes[0]
        out = self.exec(node, "python3", "-c", READ_SHIMS)
        if out.returncode != 0:  # unreadable is not "no shims"
            raise ProviderFailed(f"reading shims of {node}: {out.stderr.decode().strip()}")
        return json.loads(out.stdout or b"[]")

    def stub_leaks(self, node: str | None = None) -> list[dict[str, Any]]:
        """Shims containerd forgot, as the suites' node leak checker sees them.

        One detector for kind nodes (:class:`harness.checks.node_leaks.NodeLeakChecker`):
        it recognises stub daemons by the shim identity, not an argv pattern, and raises
        :class:`harness.verdict.Unobservable` when the node cannot be read — "could not
        look" must never read as "clean". Rows carry ``id`` (the container id) as before.
        """
        from harness.checks.node_leaks import NodeLeakChecker

        checker = NodeLeakChecker(self)
        view = checker.look(node or self.nodes[0])
        return [
            {"id": leak.container_id, **leak.summary()}
            for leak in checker.leaks_in(view)
            if leak.kind in ("shim-process", "shim-unregistered")
        ]

    def node_processes(self, node: str | None = None) -> dict[int, list[str]]:
        """pid → argv of every process in a node (the node's own pid namespace)."""
        script = (
            "import os,json,sys\n"
            "out={}\n"
            "for d in os.listdir('/proc'):\n"
            " if d.isdigit():\n"
            "  try: raw=open('/proc/'+d+'/cmdline','rb').read()\n"
            "  except OSError: continue\n"
            "  out[d]=raw.decode(errors='replace').split('\\0')[:-1]\n"
            "json.dump(out,sys.stdout)\n"
        )
        out = self.exec(node or self.nodes[0], "python3", "-c", script)
        if out.returncode != 0:
            raise ProviderFailed(f"reading processes of {node}: {out.stderr.decode().strip()}")
        return {int(k): v for k, v in json.loads(out.stdout).items() if v}

    def node_tasks(
        self, node: str | None = None, namespace: str = "k8s.io"
    ) -> list[dict[str, str]]:
        """containerd's tasks in a node (``ctr -n k8s.io tasks ls``): id, pid, status."""
        out = self._check(node or self.nodes[0], "ctr", "-n", namespace, "tasks", "ls")
        rows = [ln.split() for ln in out.splitlines()[1:] if ln.strip()]
        return [{"id": r[0], "pid": r[1], "status": r[2]} for r in rows if len(r) >= 3]

    def memory_bytes(self) -> int:
        """Resident memory (RSS) of every process in the cluster's containers, summed.

        Read on the host from the run's dockerd cgroup (``pids`` hierarchy, which every
        container process joins) and ``/proc/<pid>/status``: no exec into a node, so it can
        be sampled while ``kind create`` runs.
        """
        return cgroup_rss(self.engine.cgroup_parent)

    # -- faults ---------------------------------------------------------------------------
    def restart_apiserver(self, *, graceful: bool = True) -> float:
        """Restart kube-apiserver in the control-plane node; seconds until ``/readyz`` again.

        How: the static pod's manifest gets a new ``reconverge.io/restart`` annotation, so
        kubelet replaces the pod — SIGTERM and the pod's grace period when ``graceful``;
        otherwise the process is SIGKILLed first. Why not only a signal: kubelet restarts a
        container that exits in the *same* pod with crash-loop back-off (10 s, 20 s, …), so
        a suite's second restart would wait minutes; a new pod starts at once.
        """
        node = self.nodes[0]
        t0 = time.monotonic()
        self._restarts = getattr(self, "_restarts", 0) + 1
        journal.emit("kube", "apiserver_restart", graceful=graceful, node=node)
        before = self._check(node, "pgrep", "-x", "kube-apiserver").split()
        if not graceful:
            self._check(node, "pkill", "-KILL", "-x", "kube-apiserver")
        self._check(node, "python3", "-c", BUMP_MANIFEST, str(self._restarts))

        def new_pid() -> bool | str:
            now = self.exec(node, "pgrep", "-x", "kube-apiserver").stdout.decode().split()
            return True if now and not set(now) & set(before) else f"pids {now} (was {before})"

        wait_for(
            new_pid,
            timeout=180,
            what="kubelet replacing the kube-apiserver pod",
            interval=0.2,
            accept=lambda v: v is True,
        )
        t_pid = time.monotonic() - t0
        wait_for(self._readyz, timeout=120, what="kube-apiserver back on /readyz", interval=0.2)
        took = time.monotonic() - t0
        journal.emit(
            "kube", "apiserver_ready_again", seconds=round(took, 3), new_pid_after=round(t_pid, 3)
        )
        return took

    def _readyz(self) -> bool:
        import requests

        try:
            r = requests.get(
                f"{self.creds.server}/readyz",
                verify=str(self.creds.ca_cert),
                cert=(str(self.creds.client_cert), str(self.creds.client_key)),
                timeout=2,
            )
        except requests.RequestException:
            return False
        return r.status_code == 200

    def compact(self) -> int:
        """Compact etcd (in the control-plane node) at its current revision."""
        script = (
            "import json,ssl,http.client,base64\n"
            "c=ssl.create_default_context(cafile='/etc/kubernetes/pki/etcd/ca.crt')\n"
            "c.load_cert_chain('/etc/kubernetes/pki/etcd/healthcheck-client.crt',"
            "'/etc/kubernetes/pki/etcd/healthcheck-client.key')\n"
            "def post(p,b):\n"
            " h=http.client.HTTPSConnection('127.0.0.1',2379,context=c,timeout=10)\n"
            " h.request('POST',p,json.dumps(b));r=h.getresponse();return r.status,r.read()\n"
            "s,b=post('/v3/kv/range',{'key':base64.b64encode(b'\\0').decode(),'limit':1})\n"
            "rev=int(json.loads(b)['header']['revision'])\n"
            "s,b=post('/v3/kv/compaction',{'revision':str(rev),'physical':True})\n"
            "print(rev if s==200 or b'compacted' in b else 'error %s %s'%(s,b))\n"
        )
        out = self._check(self.nodes[0], "python3", "-c", script).strip()
        if not out.isdigit():
            raise ProviderFailed(f"etcd compaction in {self.nodes[0]} failed: {out}")
        journal.emit("kube", "etcd_compacted", revision=int(out))
        return int(out)

    # -- logs and tear-down ---------------------------------------------------------------
    def collect_logs(self) -> Path:
        """Node logs into ``<run>/logs/kind/<node>/`` (kubelet, containerd, boot, pods)."""
        base = self.run.path("logs", "kind", mkdir=True)
        for node in self.nodes:
            d = base / node
            d.mkdir(parents=True, exist_ok=True)
            steps = {
                "boot.log": ["docker", "logs", node],
                "kubelet.log": ["exec", "journalctl", "--no-pager", "-u", "kubelet"],
                "containerd.log": ["exec", "journalctl", "--no-pager", "-u", "containerd"],
                "journal.log": ["exec", "journalctl", "--no-pager", "-n", "400"],
                "tasks.txt": ["exec", "ctr", "-n", "k8s.io", "tasks", "ls"],
                "images.txt": ["exec", "ctr", "-n", "k8s.io", "images", "ls", "-q"],
                "pods.txt": ["exec", "sh", "-c", "tail -n 60 /var/log/pods/*/*/*.log"],
                "kubeadm.conf": ["exec", "cat", "/kind/kubeadm.conf"],
            }
            for fname, argv in steps.items():
                args = argv[1:] if argv[0] == "docker" else [argv[0], node, *argv[1:]]
                try:
                    out = self.engine.docker(*args, timeout=30)
                except subprocess.TimeoutExpired:
                    (d / fname).write_text("(timed out)\n")
                    continue
                (d / fname).write_bytes(out.stdout + out.stderr)
        return base

    def stop(self) -> None:
        """``kind delete cluster`` on our dockerd (the janitor removes what it leaves)."""
        if not self.name:
            return
        name, self.name = self.name, ""
        self.kind_delete(name)
        journal.emit("kube", "kind_deleted", cluster=name)

    def kind_delete(self, name: str) -> None:
        self._kind(
            "delete", "cluster", "--name", name, "--kubeconfig", str(self.kubeconfig), timeout=120
        )


def cgroup_rss(parent: str) -> int:
    """Sum of VmRSS over the processes below ``/sys/fs/cgroup/pids/<parent>`` (0 if none)."""
    from harness.janitor import _cgroup_pids, cgroup_mounts

    mounts = [m for m in cgroup_mounts() if m.name in ("pids", "unified")]
    total = 0
    for pid in set(_cgroup_pids(mounts[0] / parent)) if mounts else set():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class PeakMemory:
    """Samples :func:`cgroup_rss` every ``interval`` s on a thread; ``peak`` is the maximum."""

    def __init__(self, parent: str, interval: float = 1.0) -> None:
        import threading

        self.parent = parent
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kind-peak-memory", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, cgroup_rss(self.parent))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, cgroup_rss(self.parent))
