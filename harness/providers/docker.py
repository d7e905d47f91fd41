"""A Docker engine for container backends and kind: the one already running, or one we start.

Why start our own: on the target machines dockerd is installed but not running, and there
is no registry. The harness starts ``dockerd`` when a container backend (or kind) asks,
with a data root inside the run directory, so the janitor's sweep removes all of it:

- ``--bridge=none --iptables=false --ip-forward=false``: no default bridge, no firewall rules
  and no ``net.ipv4.ip_forward=1`` on the host (dockerd sets it by default; nothing here is
  routed: node-to-node traffic is bridged, and docker-proxy dials the node from the host).
  Containers of the toxiproxy backend use the host network, so every listener stays on
  127.0.0.1. kind nodes sit on a **per-run user-defined bridge** (:func:`network`): nodes
  reach each other on it at layer 2, which needs no iptables, and the API server is
  published on ``127.0.0.1`` by docker-proxy (the userland proxy), which needs none either.
  Nothing is masqueraded: traffic never leaves the machine.
- ``--default-runtime reconverge-runc``: our capability-dropping runtime
  (:mod:`harness.capdrop`), because ``--privileged`` asks runc for capabilities this
  machine's bounding set lacks (CAP_SYS_RESOURCE) and kind always runs nodes privileged.
- ``--cgroup-parent rcv-<run id>``: every container's cgroup lives under one directory per
  run, so a sweep can kill what a SIGKILLed dockerd left running (see the janitor's
  ``cgroup`` resource).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import binaries, journal
from harness.errors import ProviderFailed, ReconvergeError
from harness.providers.process import ManagedProcess
from harness.run import Run

if TYPE_CHECKING:
    import docker as docker_sdk

RUNTIME = "reconverge-runc"
_OWNED: dict[str, DockerEngine] = {}
_LOCK = threading.Lock()


@dataclass
class DockerEngine:
    """Where a Docker API answers, and whether this run owns the daemon."""

    host: str  # a DOCKER_HOST value, e.g. unix:///tmp/rcvd-r1/docker.sock
    owned: bool
    proc: ManagedProcess | None = None
    cgroup_parent: str = ""

    def client(self) -> docker_sdk.DockerClient:
        """A docker SDK client bound to this engine (import kept lazy: docker is slow)."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a ``docker`` (or ``kind``) command talking to this engine."""
        env = {**os.environ, "DOCKER_HOST": self.host}
        env.update(extra or {})
        return env

    def docker(
        self, *args: str, timeout: float = 60.0, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the docker CLI against this engine (bounded; never raises on exit code)."""
        return subprocess.run(
            ["docker", *args],
            capture_output=True,
            input=input,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

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


def runtime_path() -> Path:
    """The ``reconverge-runc`` executable: the console script next to our Python.

    Raises:
        ReconvergeError: the console script is not installed (an old editable install).
    """
    cand = Path(sys.executable).with_name(RUNTIME)
    if cand.exists():
        return cand
    found = shutil.which(RUNTIME)
    if found:
        return Path(found)
    raise ReconvergeError(
        f"{RUNTIME} is not installed (the capability-dropping runtime dockerd needs)",
        fix="./ci/bootstrap (pip install -e . registers the console script)",
    )


def engine(
    run: Run,
    *,
    timeout: float = 30.0,
    private: bool = False,
    seed: Path | None = None,
    data_root: Path | None = None,
) -> DockerEngine:
    """A running Docker engine, or a private ``dockerd`` for this run (one per run).

    ``private=True`` (kind) always uses the run's own dockerd: a foreign daemon has neither
    our runtime nor our clean-up. ``seed``: a data root holding only ``image/`` and
    ``overlay2/`` (see :func:`harness.kind.node_image.seed`), hard-linked into this run's
    data root before dockerd starts, so its images are there without an import; ignored
    when the run's dockerd is already up. ``data_root``: somewhere other than the run
    directory (building a seed).

    Raises:
        MissingBinary: docker.io is not installed.
        ProviderFailed: dockerd did not come up (the log tail is in the message).
    """
    if not private:
        existing = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if _answers(existing):
            journal.emit("docker", "reused", host=existing)
            return DockerEngine(existing, owned=False)
    with _LOCK:
        eng = _OWNED.get(run.id)
        if eng is not None and eng.proc is not None and eng.proc.alive():
            return eng
        eng = _start(run, timeout=timeout, seed=seed, data_root=data_root)
        _OWNED[run.id] = eng
        run.janitor.callback("docker engine forget", lambda: _OWNED.pop(run.id, None))
        return eng


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """This process's cgroup path per hierarchy mount name (``memory``, ``systemd``, ``unified``).

    Why: runc places a container with a relative ``--cgroup-parent`` below the cgroup of the
    dockerd that started it, in each hierarchy; on this machine the memory hierarchy puts the
    harness under ``/process_api/<id>``, so the container's memory cgroup is there too.
    """
    if text is None:
        try:
            text = Path("/proc/self/cgroup").read_text()
        except OSError:
            return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out["unified"] = path
        for c in controllers.split(","):
            out[c.removeprefix("name=")] = path
    return out


def _start(
    run: Run, *, timeout: float, seed: Path | None = None, data_root: Path | None = None
) -> DockerEngine:
    dockerd = binaries.require("dockerd")
    binaries.require("docker")
    runtime = runtime_path()
    # dockerd's exec root holds containerd's sockets: keep it short whatever the run dir is
    # (unix socket paths must stay under 108 bytes).
    short = Path(f"/tmp/rcvd-{run.id}")
    run.janitor.path(short)
    short.mkdir(mode=0o700, exist_ok=True)
    cgroup_parent = f"rcv-{run.id}"
    from harness.janitor import cgroup_mounts

    own = own_cgroups()
    for mount in cgroup_mounts():  # before any container exists, in every hierarchy
        # a relative --cgroup-parent lands below dockerd's own cgroup (ours), per hierarchy
        base = own.get(mount.name, "/").lstrip("/")
        run.janitor.cgroup(mount / base / cgroup_parent)
    sock = short / "docker.sock"
    host = f"unix://{sock}"
    root = data_root or run.path("docker", mkdir=True)
    if seed is not None:
        _plant(seed, root)
    argv = [
        dockerd,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--userland-proxy=true",
        f"--add-runtime={RUNTIME}={runtime}",
        f"--default-runtime={RUNTIME}",
        f"--cgroup-parent={cgroup_parent}",
        f"--host={host}",
        f"--data-root={root}",
        f"--exec-root={short / 'x'}",
        f"--pidfile={short / 'docker.pid'}",
    ]
    proc = ManagedProcess(run, "dockerd", argv).start()
    proc.wait_ready(lambda: sock.exists() and _answers(host), timeout=timeout, what="API answering")
    return DockerEngine(host, owned=True, proc=proc, cgroup_parent=cgroup_parent)


def _plant(seed: Path, root: Path) -> None:
    """Hard-link a seed's image store into an empty data root (cheap: links, not bytes).

    Only ``image/`` and ``overlay2/`` come from the seed: dockerd never writes an image
    layer's files (a container's changes go to its own upper directory) and rewrites its
    image metadata by rename, so the seed's files are never written through a link. Its
    bolt databases (containerd, network, volumes) are left out: bolt writes in place.
    """
    root.mkdir(parents=True, exist_ok=True)
    for part in ("image", "overlay2"):
        out = subprocess.run(
            ["cp", "-al", str(seed / part), str(root / part)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode != 0:
            raise ProviderFailed(f"seeding dockerd's data root from {seed}: {out.stderr.strip()}")


# -- per-run bridge network ---------------------------------------------------------------

#: Node subnets are /24s carved from here (kind's own pods use 10.244/16, services 10.96/12,
#: both inside the nodes' network namespaces).
NODE_POOL = ipaddress.ip_network("172.30.0.0/16")


def _host_routes() -> list[ipaddress.IPv4Network]:
    try:
        out = subprocess.run(
            ["ip", "-4", "route", "show"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    nets = []
    for line in out.splitlines():
        first = line.split()[0] if line.split() else ""
        if first == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(first, strict=False))
        except ValueError:
            continue
    return nets


def pick_subnet(run_id: str, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A /24 of :data:`NODE_POOL` not overlapping ``taken``, starting at a hash of the run id.

    Why not docker's IPAM: every run has its own dockerd, and each would hand out the same
    first pool; two runs' bridges would then fight over one route on the host.
    """
    subnets = list(NODE_POOL.subnets(new_prefix=24))
    start = int(hashlib.sha256(run_id.encode()).hexdigest(), 16) % len(subnets)
    for i in range(len(subnets)):
        cand = subnets[(start + i) % len(subnets)]
        if not any(cand.overlaps(t) for t in taken):
            return cand
    raise ReconvergeError(
        f"no free /24 in {NODE_POOL} for a kind network (host routes cover it)",
        fix="reconverge janitor --sweep (dead runs' bridges hold subnets)",
    )


@dataclass(frozen=True)
class Network:
    """A user-defined bridge network owned by a run."""

    name: str
    bridge: str  # the host interface, <= 15 characters
    subnet: str
    gateway: str


def network(run: Run, eng: DockerEngine) -> Network:
    """Create this run's bridge network (registered with the janitor before it exists).

    Raises:
        ProviderFailed: docker refused to create it (its message included).
    """
    name = f"rcv-{run.id}"
    bridge = f"rcvb{run.id[1:]}"[:15]
    subnet = pick_subnet(run.id, _host_routes())
    gateway = str(next(subnet.hosts()))
    run.janitor.docker_network(name, bridge=bridge, docker_host=eng.host)
    out = eng.docker(
        "network",
        "create",
        "--driver=bridge",
        f"--subnet={subnet}",
        f"--gateway={gateway}",
        "-o",
        f"com.docker.network.bridge.name={bridge}",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "-o",
        "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "--label",
        f"reconverge.run={run.id}",
        name,
        timeout=30,
    )
    if out.returncode != 0:
        raise ProviderFailed(
            f"docker network create {name} failed: {out.stderr.decode(errors='replace').strip()}"
        )
    journal.emit("docker", "network_created", name=name, bridge=bridge, subnet=str(subnet))
    return Network(name, bridge, str(subnet), gateway)
