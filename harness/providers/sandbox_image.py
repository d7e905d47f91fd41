"""A minimal pod sandbox image, built locally (there is no registry) and imported.

The stub shim never runs the image's entrypoint (its tasks run a configurable command), so
the image only has to satisfy CRI: an OCI image with one layer and a config, in containerd's
``k8s.io`` namespace, unpacked for the configured snapshotter. Built in Python from nothing:
one tar layer holding ``/pause`` (a tiny shell script), a config, a manifest and an index
in an OCI image layout tarball — deterministic bytes, so the same digest every run.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from harness.providers.containerd import Containerd

NAME = "reconverge.local/pause:1"
CRI_NAMESPACE = "k8s.io"
_PAUSE = b"#!/bin/sh\nexec sleep 1000000\n"


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(data: bytes) -> tuple[str, int]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def build(out: Path, name: str = NAME) -> Path:
    """Write the OCI image layout tarball for ``name``; returns its path."""
    layer = _tar({"pause": (_PAUSE, 0o755)})
    layer_digest, layer_size = _blob(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
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
    for data in (layer, config, manifest):
        files[f"blobs/sha256/{_blob(data)[0].removeprefix('sha256:')}"] = (data, 0o644)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_tar(files))
    return out


def ensure(c: Containerd, name: str = NAME) -> str:
    """Import the image into ``c``'s CRI namespace (idempotent); returns its name."""
    if name in c.ctr(CRI_NAMESPACE, "images", "ls", "-q").split():
        return name
    tarball = build(c.dir / "sandbox-image.tar", name)
    c.ctr(
        CRI_NAMESPACE, "images", "import", "--platform", "linux/amd64", "--snapshotter", "native",
        str(tarball),
    )  # fmt: skip
    return name
