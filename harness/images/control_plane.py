"""The images ``kubeadm init`` runs, built here from our own binaries (no registry).

kubeadm names every control-plane and add-on image ``registry.k8s.io/...`` and, with
``imagePullPolicy: IfNotPresent``, never pulls one that containerd's ``k8s.io`` namespace
already holds under that exact reference. So a node whose containerd has imported these
archives runs ``kubeadm init`` offline. The names are exactly what
``kubeadm config images list --kubernetes-version <v>`` prints (a test checks that against
the built kubeadm).

How each image is run, read from kubeadm v1.34's manifests (cmd/kubeadm/app/phases/…):

- kube-apiserver, kube-controller-manager, kube-scheduler, etcd: the static pod's
  ``command`` starts the binary *by name* (``[kube-apiserver, --flags…]``), so the binary
  sits at ``/usr/local/bin/<name>`` and the image config's ``Env`` has a ``PATH`` with it;
- kube-proxy: the DaemonSet runs ``/usr/local/bin/kube-proxy`` by absolute path, and
  kube-proxy runs ``iptables``/``iptables-restore`` inside its container, so its image also
  carries this host's iptables (:mod:`harness.images.iptables`);
- coredns: no command, only ``args: [-conf, /etc/coredns/Corefile]``, so the image's
  ``Entrypoint`` is ``/coredns`` (where upstream puts it);
- pause: containerd's sandbox container runs the image's ``Entrypoint`` with no arguments:
  our own pause (harness/build/pause.py says why it is not busybox ``sleep``).

Every image has one gzip layer: the binary plus the small base of
:mod:`harness.images.store`, which caches the archives keyed by the binary's sha256 (same
inputs, same bytes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import build
from harness.build.components import DEFAULTS
from harness.errors import ReconvergeError
from harness.images import iptables
from harness.images.store import PATH_ENV, Archive, archive_for

__all__ = ["ADDONS", "REGISTRY", "Archive", "Spec", "archives", "missing", "refs", "specs"]

REGISTRY = "registry.k8s.io"

# What kubeadm pins per minor (cmd/kubeadm/app/constants/constants.go: SupportedEtcdVersion,
# CoreDNSVersion, PauseVersion) and how we build each: (etcd tag, etcd build version,
# coredns version, pause tag).
ADDONS: dict[int, tuple[str, str, str, str]] = {
    34: ("3.6.5-0", "v3.6.5", "v1.12.1", "3.10.1"),
}


@dataclass(frozen=True)
class Spec:
    """How to make one image: which cached binary goes where, and how it is started."""

    ref: str
    component: str  # build cache component
    version: str  # its build version
    binary: str  # file name in the cache entry
    at: str  # path inside the image, without the leading slash
    config: dict[str, Any]
    iptables: bool = False  # add this host's iptables (kube-proxy runs it in its container)


def _minor(k8s_version: str) -> int:
    m = re.fullmatch(r"v1\.(\d+)\.\d+", k8s_version)
    if not m:
        raise ReconvergeError(f"not a Kubernetes release version: {k8s_version!r} (want v1.N.P)")
    minor = int(m.group(1))
    if minor not in ADDONS:
        raise ReconvergeError(
            f"no image table for Kubernetes 1.{minor}; known: "
            + ", ".join(f"1.{k}" for k in sorted(ADDONS)),
            fix="add kubeadm's etcd/coredns/pause versions to harness/images/control_plane.ADDONS",
        )
    return minor


def specs(k8s_version: str = DEFAULTS["kubernetes"]) -> list[Spec]:
    """The seven images of ``kubeadm config images list``, in kubeadm's order."""
    etcd_tag, etcd_build, coredns, pause_tag = ADDONS[_minor(k8s_version)]
    out = [
        Spec(
            f"{REGISTRY}/{name}:{k8s_version}",
            "kubernetes",
            k8s_version,
            name,
            f"usr/local/bin/{name}",
            {"Entrypoint": [f"/usr/local/bin/{name}"], "Env": [PATH_ENV]},
            iptables=name == "kube-proxy",
        )
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
    ]
    out.append(
        Spec(
            f"{REGISTRY}/coredns/coredns:{coredns}",
            "coredns",
            coredns,
            "coredns",
            "coredns",
            {"Entrypoint": ["/coredns"], "Env": [PATH_ENV]},
        )
    )
    out.append(
        Spec(
            f"{REGISTRY}/pause:{pause_tag}",
            "pause",
            DEFAULTS["pause"],
            "pause",
            "pause",
            {"Entrypoint": ["/pause"], "Env": [PATH_ENV]},
        )
    )
    out.append(
        Spec(
            f"{REGISTRY}/etcd:{etcd_tag}",
            "etcd",
            etcd_build,
            "etcd",
            "usr/local/bin/etcd",
            {"Cmd": ["/usr/local/bin/etcd"], "Env": [PATH_ENV]},
        )
    )
    return out


def refs(k8s_version: str = DEFAULTS["kubernetes"]) -> list[str]:
    """Just the references (no build): what a node's containerd must hold."""
    return [s.ref for s in specs(k8s_version)]


def missing(k8s_version: str = DEFAULTS["kubernetes"]) -> list[str]:
    """``component@version`` of every binary :func:`archives` would still have to build.

    Cheap (manifests only, never ``go``): what a caller checks before promising a quick
    :func:`archives` call, or prints as the command that fixes it.
    """
    out: list[str] = []
    for s in specs(k8s_version):
        spec = f"{s.component}@{s.version}"
        if spec not in out and build.locate(s.component, s.version) is None:
            out.append(spec)
    return out


def archives(
    k8s_version: str = DEFAULTS["kubernetes"], *, log: Callable[[str], None] = print
) -> list[Archive]:
    """(reference, OCI archive) for every image kubeadm ``k8s_version`` runs.

    Missing binaries are built first through :func:`harness.build.ensure` (the Kubernetes
    bundle, etcd at kubeadm's version, coredns, pause), so a cold call can take many
    minutes; a warm one reads manifests (their sha256s key the cache) and returns.

    Raises:
        ReconvergeError: an unknown Kubernetes minor, or a build failed (one line).
    """
    out = []
    dirs: dict[tuple[str, str], Path] = {}
    for s in specs(k8s_version):
        if (s.component, s.version) not in dirs:
            dirs[s.component, s.version] = build.ensure(s.component, s.version, log=log).parent
        binary = dirs[s.component, s.version] / s.binary
        m = build.manifest(s.component, s.version) or {}
        same_entry = m.get("dir") == str(binary.parent)
        known = (m.get("sha256") or {}).get(s.binary) if same_entry else None
        files: dict[str, tuple[Path, int]] = {s.at: (binary, 0o755)}
        links = None
        if s.iptables:
            host = iptables.host_files()
            if host is None:
                log(f"image {s.ref}: this host has no iptables; kube-proxy will lack it")
            else:
                files.update(host[0])
                links = host[1]
        digests = {s.at: known} if known else None
        out.append(archive_for(s.ref, files, s.config, entries=links, digests=digests, log=log))
    return out
