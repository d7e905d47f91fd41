"""Deterministic OCI image-layout tarballs, written in Python from nothing.

Why not docker build or buildkit: there is no registry and no base image on these
machines, and an image is only tar layers plus three JSON documents. Layers, a config, a
manifest and an index go into an OCI image layout tarball that ``ctr images import`` and
``docker load`` accept. The bytes are deterministic (fixed mtimes, owners, order), so the
same inputs give the same file and the same image digest on every run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One tar member: a file (``data``), a directory (``data is None``) or a symlink."""

    mode: int = 0o755
    data: bytes | None = None
    link: str | None = None


def tar(
    files: dict[str, tuple[bytes, int]],
    entries: dict[str, Entry] | None = None,
    *,
    all_parents: bool = False,
) -> bytes:
    """Deterministic tar: sorted names, mtime 0, root owner, parent dirs first.

    ``files`` are regular files (data, mode); ``entries`` adds directories with their own
    mode (``/tmp`` is 1777) and symlinks (busybox applets). Only each member's immediate
    parent directory is written unless ``all_parents`` (image layers want every ancestor;
    the layout tarball keeps its historical bytes so cached sandbox images stay valid).
    """
    every: dict[str, Entry] = {n: Entry(mode, data) for n, (data, mode) in files.items()}
    every.update(entries or {})
    if all_parents:
        parents = {str(p) for n in every for p in Path(n).parents} - {"."}
    else:
        parents = {str(Path(n).parent) for n in every} - {"."}
    dirs = {d: every.pop(d, Entry()) for d in parents | {n for n, e in every.items() if _isdir(e)}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, dirs[d].mode, 0
            info.uname = info.gname = "root"
            tf.addfile(info)
        for name, e in sorted(every.items()):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = e.mode, 0
            info.uname = info.gname = "root"
            if e.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, e.link
                tf.addfile(info)
            else:
                data = e.data or b""
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _isdir(e: Entry) -> bool:
    return e.data is None and e.link is None


def blob(data: bytes) -> tuple[str, int]:
    """(``sha256:<hex>``, size) of a blob."""
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def layout(layer_bytes: bytes, name: str, entrypoint: list[str]) -> bytes:
    """The OCI image layout tarball for one uncompressed layer run by ``entrypoint``."""
    return image_layout([layer_bytes], {"Entrypoint": entrypoint}, name)


def image_layout(
    layers: list[bytes], config: dict[str, Any], name: str, *, gzip_level: int | None = None
) -> bytes:
    """The OCI image layout tarball (``oci-layout``, ``index.json``, blobs).

    ``config`` is the image config's ``config`` object (``Entrypoint``, ``Cmd``, ``Env``,
    …) — what containerd's CRI turns into the container's process when a pod gives no
    command. ``name`` goes into the index entry's annotations: ``io.containerd.image.name``
    is what ``ctr images import`` names the image (verbatim, no prefix added);
    ``org.opencontainers.image.ref.name`` carries the same full reference for other tools.
    With ``gzip_level`` the layers are stored gzip-compressed (``mtime=0``: deterministic);
    their diff_ids stay the digests of the uncompressed tars, as the OCI spec requires.
    """
    diff_ids = [blob(layer)[0] for layer in layers]
    stored = layers
    layer_type = "application/vnd.oci.image.layer.v1.tar"
    if gzip_level is not None:
        stored = [gzip.compress(layer, compresslevel=gzip_level, mtime=0) for layer in layers]
        layer_type += "+gzip"
    config_bytes = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        },
        sort_keys=True,
    ).encode()
    config_digest, config_size = blob(config_bytes)
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
                {"mediaType": layer_type, "digest": d, "size": n}
                for d, n in (blob(layer) for layer in stored)
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
    for data in (*stored, config_bytes, manifest):
        files[f"blobs/sha256/{blob(data)[0].removeprefix('sha256:')}"] = (data, 0o644)
    return tar(files)


def write_atomic(path: Path, data: bytes) -> Path:
    """Write via a temporary name and rename: a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
