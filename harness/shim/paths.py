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

    __slots__ = ("control", "dir", "exits", "key", "lockfile", "pidfile", "registry", "socket")

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
        #: the owner lock (:func:`owner_lock`); kept, like the record: it is never in the way
        self.lockfile = base + ".lock"

    def __repr__(self) -> str:
        return f"ShimPaths({self.dir}/{self.key}.*)"

    @classmethod
    def of(cls, address: str, namespace: str, container_id: str) -> ShimPaths:
        key = sha256(f"{address}\0{namespace}\0{container_id}".encode()).hexdigest()[:16]
        return cls(key, shims_dir_str())


class owner_lock:  # lower case: used like a function, ``with owner_lock(paths):``
    """Exclusive lock of one shim key's files, between ``start``/``delete`` and daemons.

    Why: a re-created id's new daemon owns the very paths the previous daemon of the id is
    still leaving. ``start`` (probe, unlink, bind, pidfile) and an exiting daemon's
    check-then-unlink (:func:`unlink_if_same`) take this lock, so neither acts on what it
    saw a moment before. A POSIX record lock (``lockf``), not ``flock``: it belongs to the
    process, so a daemon forked while ``start`` holds it does not inherit it.
    """

    __slots__ = ("fd", "path")

    def __init__(self, paths: ShimPaths) -> None:
        self.path = paths.lockfile
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl  # a builtin module: no cost worth deferring further

        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        os.close(self.fd)  # closing releases the record lock


def file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of ``path`` without following a link; None when it does not exist.

    A daemon records this for the sockets it serves on: a path with another id later is a
    successor's file, bound after this one was removed.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def unlink_if_same(path: str, ident: tuple[int, int] | None) -> bool:
    """Remove ``path`` only if it is still the file ``ident`` recorded; True when removed.

    Call it holding :class:`owner_lock`: nobody can rebind the path between the check and
    the unlink then.
    """
    if ident is None or file_id(path) != ident:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
