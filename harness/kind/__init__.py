"""kind clusters offline: the node image we assemble ourselves, and what kind needs from it.

Why our own node image: ``kind build node-image`` fetches etcd, coredns, pause and kindnetd
from a registry and fails offline, and ``kind create cluster --image X`` pulls only when the
image is missing. So the harness builds the node from Debian packages (``rootfs``), files of
its own (``fixtures/kind/``), the Go-built Kubernetes bundle and the locally built
control-plane images (``layers``), and imports the result into the run's dockerd
(``node_image``). Background and the node contract it implements: ``docs/kind.md``.
"""
