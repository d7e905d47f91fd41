"""Where a shim keeps its socket, pid, failpoint control socket and registry entry.

Why outside the bundle: containerd deletes the bundle on every task delete, but a leaked
shim's files are the evidence the leak detector looks for; and socket paths must stay
short (``sun_path`` is 108 bytes), so names are a short hash of (address, namespace, id).

Plain strings and a plain class: ``start`` and ``delete`` import this inside containerd's
deadlines, and ``pathlib`` plus ``dataclasses`` cost ~10 ms of a cold interpreter.
"""

from __future__ import annotations

import os

try:  # the builtin SHA-256 (~0.2 ms) instead of hashlib's OpenSSL binding (~2.5 ms)
    from _sha256 import sha256  # CPython <= 3.11
except ImportError:  # pragma: no cover - other interpreters and versions
    try:
        from _sha2 import sha256  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms in delete)
if TYPE_CHECKING:
    from pathlib import Path


def shims_dir_str() -> str:
    """``$RECONVERGE_RUN_DIR/shims`` when run by the harness, else ``/run/reconverge-shim``."""
    run_dir = os.environ.get("RECONVERGE_RUN_DIR")
    return os.path.join(run_dir, "shims") if run_dir else "/run/reconverge-shim"


def shims_dir() -> Path:
    """:func:`shims_dir_str` as a ``Path`` (for the checks; the shim itself uses strings)."""
    from pathlib import Path

    return Path(shims_dir_str())


class ShimPaths:
    """Every file one shim owns (paths as strings)."""

    __slots__ = ("control", "dir", "exits", "key", "pidfile", "registry", "socket")

    def __init__(self, key: str, directory: str) -> None:
        self.key = key
        self.dir = directory
        base = os.path.join(directory, key)
        self.socket = base + ".sock"
        self.control = base + ".fp.sock"
        self.pidfile = base + ".pid"
        self.registry = base + ".json"
        #: the incarnation record; kept when the daemon exits (the next daemon of the same
        #: id reads it: a late exit of an earlier task needs its pid and exit time)
        self.exits = base + ".exits.jsonl"

    def __repr__(self) -> str:
        return f"ShimPaths({self.dir}/{self.key}.*)"

    @classmethod
    def of(cls, address: str, namespace: str, container_id: str) -> ShimPaths:
        key = sha256(f"{address}\0{namespace}\0{container_id}".encode()).hexdigest()[:16]
        return cls(key, shims_dir_str())
