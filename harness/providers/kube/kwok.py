"""kwok as an optional kubelet: realism (node heartbeats, its own timing) over determinism.

Why optional: the claim suites need three kubelet behaviours (pod becomes Running/Ready,
a graceful deletion is finished, a pod vanishes or turns Succeeded/Unknown), each a single
API call that :mod:`harness.providers.kubelet` performs deterministically and journals. kwok plays
the same role with non-deterministic delays, which is useful to soak a reconciler but not
for a verdict that must repeat 20/20. It runs out-of-cluster against any provider's API
server with the stages in ``fixtures/kube/kwok-stages.yaml`` (the bare binary ships none)
and manages only nodes annotated ``kwok.x-k8s.io/node=fake``.

Install: ``go install sigs.k8s.io/kwok/cmd/kwok@v0.8.0`` (no replace directives, builds
through the module proxy); not part of the default build set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness import fixtures_dir, journal
from harness.providers.kube.api import Kube, Resource
from harness.providers.kube.base import Availability, Cluster
from harness.providers.process import ManagedProcess, free_port
from harness.run import Run

NODES = Resource("Node", "", "v1", "nodes", namespaced=False)
NODE_ANNOTATION = "kwok.x-k8s.io/node"
STAGES = fixtures_dir.path("kube", "kwok-stages.yaml")


def locate() -> Path | None:
    """kwok from $RECONVERGE_KWOK_BIN, ``~/go/bin`` or PATH."""
    env = os.environ.get("RECONVERGE_KWOK_BIN")
    if env:
        return Path(env) if Path(env).exists() else None
    gobin = Path(os.environ.get("GOBIN") or Path.home() / "go" / "bin") / "kwok"
    if gobin.exists():
        return gobin
    w = shutil.which("kwok")
    return Path(w) if w else None


def availability() -> Availability:
    if locate() is None:
        return Availability(
            False, "unavailable: kwok not installed (go install sigs.k8s.io/kwok/cmd/kwok@v0.8.0)"
        )
    return Availability(True)


def row() -> dict[str, str]:
    p = locate()
    return {
        "component": "kwok",
        "status": "optional",
        "version": "-",
        "path": str(p) if p else "-",
        "backend": "kubelet: harness (default)" + ("; kwok available" if p else ""),
    }


def argv(binary: Path, kubeconfig: Path, port: int) -> list[str]:
    """kwok out-of-cluster, managing only our annotated fake nodes."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--config={STAGES}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
        "--cidr=10.0.0.0/24",
        "--node-ip=10.0.0.1",
        f"--node-port={port}",
        "--server-address=127.0.0.1:0",
    ]


class KwokKubelet:
    """A running kwok plus the fake node it manages."""

    def __init__(self, run: Run, cluster: Cluster, *, node: str = "kwok-node") -> None:
        binary = locate()
        if binary is None:
            raise RuntimeError(availability().reason)
        self.node = node
        self.truth: Kube = cluster.truth()
        self.truth.create(
            NODES,
            None,
            {"metadata": {"name": node, "annotations": {NODE_ANNOTATION: "fake"}}},
        )
        self.proc = ManagedProcess(
            run, "kwok", argv(binary, cluster.kubeconfig, free_port())
        ).start()
        journal.emit("kwok", "started", node=node)

    def stop(self) -> None:
        self.proc.stop()
        self.truth.delete(NODES, None, self.node, grace_seconds=0)
        self.truth.close()
