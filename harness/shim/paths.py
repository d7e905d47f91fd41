"""Where a shim keeps its socket, pid, failpoint control socket and registry entry.

Why outside the bundle: containerd deletes the bundle on every task delete, but a leaked
shim's files are the evidence the leak detector looks for; and socket paths must stay
short (``sun_path`` is 108 bytes), so names are a short hash of (address, namespace, id).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def shims_dir() -> Path:
    """``$RECONVERGE_RUN_DIR/shims`` when run by the harness, else ``/run/reconverge-shim``."""
    run_dir = os.environ.get("RECONVERGE_RUN_DIR")
    return Path(run_dir) / "shims" if run_dir else Path("/run/reconverge-shim")


@dataclass(frozen=True)
class ShimPaths:
    """Every file one shim owns."""

    key: str
    socket: Path
    control: Path
    pidfile: Path
    registry: Path

    @classmethod
    def of(cls, address: str, namespace: str, container_id: str) -> ShimPaths:
        key = hashlib.sha256(f"{address}\0{namespace}\0{container_id}".encode()).hexdigest()[:16]
        d = shims_dir()
        return cls(
            key, d / f"{key}.sock", d / f"{key}.fp.sock", d / f"{key}.pid", d / f"{key}.json"
        )
