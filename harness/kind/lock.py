"""One builder at a time for the kind cache (``$RECONVERGE_CACHE/kind/.lock``, flock).

Why: xdist workers and other engineers' test runs start kind clusters concurrently, and
each may find a tree, the merged image or the dockerd seed missing and build it; two
builders of the same directory delete each other's work (seen: ``lchown /usr/bin/kubelet:
no such file`` in the middle of a ``docker import``). Holders re-check what they build
after taking the lock. Re-entrant within a process (ensure → merge → seed).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from harness.errors import ReconvergeError, TooSlow
from harness.wait import wait_for

_local = threading.local()
_guard = threading.Lock()


@contextlib.contextmanager
def held(root: Path, *, timeout: float = 1800.0) -> Iterator[None]:
    """Hold the cache lock under ``root`` (waits up to ``timeout`` for another builder)."""
    depth = getattr(_local, "depth", 0)
    if depth:
        _local.depth = depth + 1
        try:
            yield
        finally:
            _local.depth -= 1
        return
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        with _guard:
            try:
                wait_for(take, timeout=timeout, what="the kind cache lock", interval=0.5)
            except TooSlow:
                raise ReconvergeError(
                    f"another process has been building in {root} for {timeout:.0f} s",
                    fix=f"wait for it, or find it with: fuser {root / '.lock'}",
                ) from None
            _local.depth = 1
        try:
            yield
        finally:
            _local.depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
