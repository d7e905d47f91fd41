"""Deterministic OCI image-layout tarballs, written in Python from nothing.

One tar layer, a config, a manifest and an index in an OCI image layout tarball. The
bytes are deterministic (fixed mtimes, owners, order), so the same inputs give the same
file and the same image digest on every run.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    """Deterministic tar: sorted names, mtime 0, root owner, parent dirs first."""
    dirs = {str(Path(n).parent) for n in files} - {"."}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            info.uname = info.gname = "root"
            tf.addfile(info)
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = "root"
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def blob(data: bytes) -> tuple[str, int]:
    """(``sha256:<hex>``, size) of a blob."""
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def layout(layer_bytes: bytes, name: str, entrypoint: list[str]) -> bytes:
    """The OCI image layout tarball (``oci-layout``, ``index.json``, blobs) for one layer."""
    layer_digest, layer_size = blob(layer_bytes)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest, config_size = blob(config)
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
    manifest_digest, manifest_size = blob(manifest)
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
        files[f"blobs/sha256/{blob(data)[0].removeprefix('sha256:')}"] = (data, 0o644)
    return tar(files)
