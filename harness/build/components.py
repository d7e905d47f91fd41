"""Which components exist, their default versions, and which ones come in a bundle.

Why a module of its own: ``cache`` (look-ups, no ``go``) and ``recipes`` (builds) both need
the defaults and the bundle map, and neither should import the other at module level.
"""

from __future__ import annotations

from harness.build import pause

# The Kubernetes release every Kubernetes binary is built at. v1.34.x: kubelet <= 1.34 runs
# on this machine's cgroup v1 without ``failCgroupV1: false`` (docs/build-cache.md).
KUBERNETES_VERSION = "v1.34.4"

# The seven commands built in ONE ``go build`` so they share compilation (and the linker
# runs once per binary, never twice for the same one). kube-apiserver is first: the local
# control plane was the first user, and ``ensure("kubernetes")`` returns this binary.
KUBERNETES_BINARIES: tuple[str, ...] = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubeadm",
    "kubectl",
)

# member -> bundle component: ``locate("kube-apiserver")`` is answered by the bundle's entry
# when no stand-alone kube-apiserver entry exists (older caches have one; it still wins).
BUNDLED: dict[str, str] = {name: "kubernetes" for name in KUBERNETES_BINARIES}

DEFAULTS: dict[str, str] = {
    "toxiproxy": "v2.12.0",
    "etcd": "v3.6.16",
    "kubernetes": KUBERNETES_VERSION,
    **{name: KUBERNETES_VERSION for name in KUBERNETES_BINARIES},
    "containerd": "v2.1.5",
    "coredns": "v1.12.1",
    "pause": pause.VERSION,
    "kind": "v0.33.0",
    "kwok": "v0.8.0",
    "actionlint": "v1.7.12",
}

# What ci/bootstrap builds when asked for "the defaults": the local control plane
# (etcd + kube-apiserver from the bundle), the containerd 2.x pair of seed b and the newest
# 2.x release, and everything the kind node image needs (the bundle, coredns, etcd at
# kubeadm's version, pause, kind).
DEFAULT_SET: tuple[str, ...] = (
    "toxiproxy",
    "etcd",
    "kubernetes",
    "containerd@v2.1.4",
    "containerd@v2.1.5",
    # the newest release the module proxy serves: the stub's -info answer (RuntimeInfo) is
    # checked on it, and it is seed c's first release that does not leak (docs/matrix.md)
    "containerd@v2.4.2",
    "etcd@v3.6.5",
    "coredns",
    "pause",
    "kind",
    "actionlint",  # ~18 CPU s cold: the CI-template test validates the workflow with it
)
