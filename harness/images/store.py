"""Cached OCI archives of single-layer images made from files on this machine.

Why a cache: an image of a 90 MB Go binary takes seconds to tar and gzip, and a node
image build or a test wants the same bytes every time. Archives live under
``$RECONVERGE_CACHE/images/<ref slug>-<key>.tar``; the key is a digest of the reference,
every input file's sha256 and mode, the extra entries, the config and :data:`FORMAT`, so a
changed binary gives a new file and an unchanged one is a hit without writing anything.

Every image gets a tiny base — ``/etc/passwd`` and ``/etc/group`` with root and nobody,
``/etc/nsswitch.conf``, ``/tmp`` (1777), ``/root`` — what distroless/static gives upstream's
images and what Go programs look for (user look-ups, ``os.TempDir``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.build import cache
from harness.images import oci

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the bytes of an image change without its inputs changing (a new base file…).
FORMAT = "1"
GZIP_LEVEL = 1  # Go binaries shrink to ~40 %; level 1 costs seconds, not tens of seconds

BASE_FILES: dict[str, tuple[bytes, int]] = {
    "etc/passwd": (
        b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n",
        0o644,
    ),
    "etc/group": (b"root:x:0:\nnogroup:x:65534:\n", 0o644),
    "etc/nsswitch.conf": (b"hosts: files dns\n", 0o644),
}
BASE_DIRS: dict[str, oci.Entry] = {"tmp": oci.Entry(mode=0o1777), "root": oci.Entry(mode=0o700)}


@dataclass(frozen=True)
class Archive:
    """One image: the reference it is imported under and the OCI archive that carries it."""

    ref: str
    path: Path


def images_dir() -> Path:
    """Where archives are cached."""
    return cache.root() / "images"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (binaries are ~100 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ref.removeprefix("registry.k8s.io/"))


def archive_for(
    ref: str,
    files: dict[str, tuple[Path, int]],
    config: dict[str, Any],
    *,
    entries: dict[str, oci.Entry] | None = None,
    digests: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> Archive:
    """The cached OCI archive of one image made of ``files`` (path in image -> host file).

    ``digests`` gives sha256s already known for some of those paths (a build manifest
    records them), so a hit on 500 MB of binaries hashes nothing; other inputs are hashed.
    A miss writes the archive atomically (concurrent callers may both write it; the bytes
    are identical, the last rename wins).
    """
    known = digests or {}
    key_src = {
        "ref": ref,
        "files": {
            k: [known.get(k) or sha256_file(p), mode] for k, (p, mode) in sorted(files.items())
        },
        "entries": {k: [e.mode, e.link] for k, e in sorted((entries or {}).items())},
        "config": config,
        "format": FORMAT,
    }
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:16]
    out = images_dir() / f"{_slug(ref)}-{key}.tar"
    if out.exists():
        log(f"image {ref}: cached ({out})")
        return Archive(ref, out)
    t0 = time.monotonic()
    layer_files = dict(BASE_FILES)
    layer_files.update({k: (p.read_bytes(), mode) for k, (p, mode) in files.items()})
    layer = oci.tar(layer_files, {**BASE_DIRS, **(entries or {})}, all_parents=True)
    oci.write_atomic(out, oci.image_layout([layer], config, ref, gzip_level=GZIP_LEVEL))
    log(f"image {ref}: written in {time.monotonic() - t0:.1f} s ({out})")
    return Archive(ref, out)
