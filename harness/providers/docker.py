"""A Docker engine for container backends: the one already running, or one we start.

Why start our own: on the target machines dockerd is installed but not running, and
there is no registry. The harness starts ``dockerd`` only when a container backend is
asked for, with ``--bridge=none --iptables=false`` (containers use the host network, so
every listener stays on 127.0.0.1) and a data root inside the run directory, so the
janitor's sweep removes all of it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import binaries, journal
from harness.errors import ProviderFailed
from harness.providers.process import ManagedProcess
from harness.run import Run

if TYPE_CHECKING:
    import docker as docker_sdk


@dataclass
class DockerEngine:
    """Where a Docker API answers, and whether this run owns the daemon."""

    host: str  # a DOCKER_HOST value, e.g. unix:///tmp/rcv/r1/docker.sock
    owned: bool
    proc: ManagedProcess | None = None

    def client(self) -> docker_sdk.DockerClient:
        """A docker SDK client bound to this engine (import kept lazy: docker is slow)."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=10)


def _answers(host: str) -> bool:
    docker_bin = binaries.locate("docker")
    if docker_bin is None:
        return False
    try:
        out = subprocess.run(
            [str(docker_bin.path), "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            env={**os.environ, "DOCKER_HOST": host},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def engine(run: Run, *, timeout: float = 30.0) -> DockerEngine:
    """Use a running Docker engine, or start a private ``dockerd`` for this run.

    Raises:
        MissingBinary: docker.io is not installed.
        ProviderFailed: dockerd did not come up (the log tail is in the message).
    """
    existing = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if _answers(existing):
        journal.emit("docker", "reused", host=existing)
        return DockerEngine(existing, owned=False)
    dockerd = binaries.require("dockerd")
    binaries.require("docker")
    # dockerd's exec root holds containerd's sockets: keep it short whatever the run dir is
    # (unix socket paths must stay under 108 bytes).
    short = Path(f"/tmp/rcvd-{run.id}")
    short.mkdir(mode=0o700, exist_ok=True)
    run.janitor.path(short)
    sock = short / "docker.sock"
    host = f"unix://{sock}"
    argv = [
        dockerd,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        f"--host={host}",
        f"--data-root={run.path('docker', mkdir=True)}",
        f"--exec-root={short / 'x'}",
        f"--pidfile={short / 'docker.pid'}",
        "--userland-proxy=false",
    ]
    proc = ManagedProcess(run, "dockerd", argv).start()
    proc.wait_ready(lambda: sock.exists() and _answers(host), timeout=timeout, what="API answering")
    if not proc.alive():  # pragma: no cover - wait_ready already raised
        raise ProviderFailed("dockerd exited")
    return DockerEngine(host, owned=True, proc=proc)
