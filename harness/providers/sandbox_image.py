"""A minimal pod sandbox image, built locally (there is no registry) and imported.

CRI needs an image for every pod sandbox: an OCI image in containerd's ``k8s.io``
namespace, unpacked for the configured snapshotter. The stub shim never runs the image's
entrypoint (its tasks run a configurable command), but the image is still a real, runnable
one — Debian's static busybox at ``/bin/busybox`` with ``sleep`` as its entrypoint — so the
same image serves a real runtime handler (runc) unchanged.

Built in Python from nothing by :mod:`harness.images.oci`: one tar layer, a config, a
manifest and an index in an OCI image layout tarball. The bytes are deterministic, so the
tarball is cached under ``$RECONVERGE_CACHE/images/`` by the digest of its layer: the same
busybox gives the same file and the same image digest on every run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness import binaries
from harness.build import cache
from harness.images import oci
from harness.providers.containerd import Containerd

NAME = "reconverge.local/pause:1"
CRI_NAMESPACE = "k8s.io"
BUSYBOX_IN_IMAGE = "bin/busybox"
# a pause container only has to stay alive until it is killed
ENTRYPOINT = ["/bin/busybox", "sleep", "2147483647"]


def layer(busybox: Path | None = None) -> bytes:
    """The image's only layer: the static busybox at ``/bin/busybox``."""
    path = busybox or binaries.require("busybox")
    return oci.tar({BUSYBOX_IN_IMAGE: (Path(path).read_bytes(), 0o755)})


def layout(layer_bytes: bytes, name: str = NAME) -> bytes:
    """The OCI image layout tarball (``oci-layout``, ``index.json``, blobs) for one layer."""
    return oci.layout(layer_bytes, name, ENTRYPOINT)


def build(out: Path, name: str = NAME, *, busybox: Path | None = None) -> Path:
    """Write the OCI image layout tarball for ``name`` to ``out``; returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(layout(layer(busybox), name))
    return out


def cached(name: str = NAME, *, busybox: Path | None = None) -> Path:
    """The tarball in the cache, keyed by layer digest and name; built on first use.

    Written to a temporary name and renamed, so concurrent runs (xdist workers) never
    import a half-written file.
    """
    data = layer(busybox)
    key = hashlib.sha256(data + b"\0" + name.encode()).hexdigest()[:16]
    out = cache.root() / "images" / f"pause-{key}.tar"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        tmp.write_bytes(layout(data, name))
        tmp.replace(out)
    return out


def ensure(c: Containerd, name: str = NAME) -> str:
    """Import the image into ``c``'s CRI namespace (idempotent); returns its name."""
    if name in c.ctr(CRI_NAMESPACE, "images", "ls", "-q").split():
        return name
    c.ctr(
        CRI_NAMESPACE, "images", "import", "--platform", "linux/amd64", "--snapshotter", "native",
        str(cached(name)),
    )  # fmt: skip
    return name
