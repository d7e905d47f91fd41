"""The ``kind`` provider: a throw-away kind cluster, where Docker and a node image exist.

Why it only works with a node image already present: ``kind create cluster`` pulls
``kindest/node`` otherwise, and building one offline is a multi-day project (§4 of
``kubernetes-path.md``). So availability checks ``kind`` (``go install``ed:
``~/go/bin/kind`` or PATH), ``docker`` with a reachable daemon, and the pinned node image in
the local image store — and says ``unavailable: no node image`` instead of trying to pull.

The API server is published on a pinned loopback port (``networking.apiServerAddress:
127.0.0.1``, ``apiServerPort``), and kubeadm puts ``127.0.0.1`` into the certificate SANs,
so a toxiproxy listener on another loopback port verifies like the direct address. The node
container is registered with the janitor before it exists, so a SIGKILLed run's sweep
removes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from harness import journal
from harness.errors import ProviderFailed
from harness.providers.kube import kubeconfig
from harness.providers.kube.base import Availability, Cluster, Provider
from harness.providers.process import free_port
from harness.run import Run

#: The node image kind v0.32.0 defaults to; override with RECONVERGE_KIND_IMAGE.
DEFAULT_IMAGE = "kindest/node:v1.36.1"
CREATE_TIMEOUT = 300.0


def locate_kind() -> Path | None:
    """``kind`` from $RECONVERGE_KIND_BIN, ``~/go/bin`` (go install) or PATH."""
    env = os.environ.get("RECONVERGE_KIND_BIN")
    if env:
        return Path(env) if Path(env).exists() else None
    gobin = Path(os.environ.get("GOBIN") or Path.home() / "go" / "bin") / "kind"
    if gobin.exists():
        return gobin
    w = shutil.which("kind")
    return Path(w) if w else None


def node_image() -> str:
    return os.environ.get("RECONVERGE_KIND_IMAGE", DEFAULT_IMAGE)


def _docker(*args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def config_document(api_port: int) -> dict[str, Any]:
    """The kind cluster config: one node, API server on a pinned loopback port."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"apiServerAddress": "127.0.0.1", "apiServerPort": api_port},
        "nodes": [{"role": "control-plane"}],
    }


class KindProvider(Provider):
    """Create and delete a kind cluster per run."""

    name = "kind"

    def availability(self) -> Availability:
        if locate_kind() is None:
            return Availability(
                False, "unavailable: kind not installed (go install sigs.k8s.io/kind@v0.32.0)"
            )
        if shutil.which("docker") is None:
            return Availability(False, "unavailable: docker CLI missing")
        try:
            info = _docker("info", "--format", "{{.ServerVersion}}", timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return Availability(False, "unavailable: docker daemon not reachable")
        if info.returncode != 0:
            return Availability(False, "unavailable: docker daemon not reachable")
        image = _docker("image", "inspect", node_image(), timeout=5)
        if image.returncode != 0:
            return Availability(False, f"unavailable: no node image ({node_image()})")
        return Availability(True)

    def rows(self) -> list[dict[str, str]]:
        kind = locate_kind()
        a = self.availability()
        version = "-"
        if kind is not None:
            try:
                out = subprocess.run(
                    [str(kind), "version"], capture_output=True, text=True, timeout=5, check=False
                )
                version = (out.stdout or out.stderr).strip() or "-"
            except (OSError, subprocess.TimeoutExpired):
                pass
        return [
            {
                "component": "kind",
                "status": "ok" if a else "optional",
                "version": version,
                "path": str(kind) if kind else "-",
                "backend": "kind" if a else f"kind ({a.reason})",
            }
        ]

    def start(self, run: Run, **options: Any) -> KindCluster:
        a = self.availability()
        if not a:
            raise ProviderFailed(f"kind {a.reason}")
        kind = locate_kind()
        assert kind is not None
        name = f"rcv-{run.id}"
        api_port = int(options.get("api_port") or free_port())
        workdir = run.path("kube", mkdir=True)
        cfg = workdir / "kind.yaml"
        cfg.write_text(yaml.safe_dump(config_document(api_port), sort_keys=False))
        kc = workdir / "kubeconfig"
        # registered before it exists, so a sweep of a killed run deletes the node
        run.janitor.container(f"{name}-control-plane")
        t0 = time.monotonic()
        journal.emit("kube", "kind_create", cluster=name, api_port=api_port, image=node_image())
        out = subprocess.run(
            [
                str(kind),
                "create",
                "cluster",
                "--name",
                name,
                "--image",
                node_image(),
                "--config",
                str(cfg),
                "--kubeconfig",
                str(kc),
                "--wait",
                "60s",
            ],
            capture_output=True,
            text=True,
            timeout=CREATE_TIMEOUT,
            check=False,
            env=run.child_env(),
        )
        if out.returncode != 0:
            raise ProviderFailed(f"kind create cluster failed: {out.stderr.strip()[-800:]}")
        creds = kubeconfig.load(kc, workdir=workdir / "creds")
        cluster = KindCluster(backend="kind", creds=creds, kubeconfig=kc)
        cluster.kind = kind
        cluster.name = name
        cluster.bring_up_seconds = time.monotonic() - t0
        cluster.versions = {"kind": str(kind), "node image": node_image()}
        run.janitor.callback(f"kind delete {name}", cluster.stop)
        journal.emit("kube", "kind_ready", **cluster.describe())
        return cluster


class KindCluster(Cluster):
    """A kind cluster owned by the run; :meth:`stop` deletes it."""

    kind: Path | None = None
    name: str = ""

    def stop(self) -> None:
        if self.kind is None or not self.name:
            return
        subprocess.run(
            [str(self.kind), "delete", "cluster", "--name", self.name],
            capture_output=True,
            timeout=120,
            check=False,
        )
        journal.emit("kube", "kind_deleted", cluster=self.name)
        self.name = ""
