"""A minimal pod sandbox image, built locally (there is no registry) and imported.

CRI needs an image for every pod sandbox: an OCI image in containerd's ``k8s.io``
namespace, unpacked for the configured snapshotter. The stub shim never runs the image's
entrypoint (its tasks run a configurable command), but the image is still a real, runnable
one — Debian's static busybox at ``/bin/busybox`` with ``sleep`` as its entrypoint — so the
same image serves a real runtime handler (runc) unchanged.

Built in Python from nothing: one tar layer, a config, a manifest and an index in an OCI
image layout tarball. The bytes are deterministic (fixed mtimes, owners, order), so the
tarball is cached under ``$RECONVERGE_CACHE/images/`` by the digest of its layer: the same
busybox gives the same file and the same image digest on every run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from harness import binaries
from harness.build import cache
from harness.providers.containerd import Containerd

NAME = "reconverge.local/pause:1"
CRI_NAMESPACE = "k8s.io"
BUSYBOX_IN_IMAGE = "bin/busybox"
# a pause container only has to stay alive until it is killed
ENTRYPOINT = ["/bin/busybox", "sleep", "2147483647"]


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    """Deterministic tar: sorted names, mtime 0, root owner, parent dirs first."""
    dirs = {str(Path(n).parent) for n in files} - {"."}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            info.uname = info.gname = "root"
            tar.addfile(info)
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(data: bytes) -> tuple[str, int]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def layer(busybox: Path | None = None) -> bytes:
    """The image's only layer: the static busybox at ``/bin/busybox``."""
    path = busybox or binaries.require("busybox")
    return _tar({BUSYBOX_IN_IMAGE: (Path(path).read_bytes(), 0o755)})


def layout(layer_bytes: bytes, name: str = NAME) -> bytes:
    """The OCI image layout tarball (``oci-layout``, ``index.json``, blobs) for one layer."""
    layer_digest, layer_size = _blob(layer_bytes)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ENTRYPOINT},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest, config_size = _blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        },
        sort_keys=True,
    ).encode()
    manifest_digest, manifest_size = _blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name,
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    files = {
        "oci-layout": (b'{"imageLayoutVersion":"1.0.0"}', 0o644),
        "index.json": (index, 0o644),
    }
    for data in (layer_bytes, config, manifest):
        files[f"blobs/sha256/{_blob(data)[0].removeprefix('sha256:')}"] = (data, 0o644)
    return _tar(files)


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
