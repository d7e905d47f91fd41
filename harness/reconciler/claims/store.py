"""The in-process stand-in for MatrixOne's store (HAKeeper) RPC, with failpoints.

Why a stub: the real operator's ``patchStore`` resolves a CNSet and LogSet and dials
HAKeeper (§6.5); against a bare API server every call would fail, turning Sync into
``ErrReSync`` and Finalize into ``(false, err)`` — different paths from the ones the bugs
live on. The stub keeps the *shape*: a call that can time out, fail, or answer "does not
exist" (which ``reclaimCN`` ignores), decided by failpoints so a case can inject it:

- ``claims.store.PatchCNStore``: ``error(msg)`` fails the call; ``return(does not exist)``
  answers like a store that forgot the CN; ``delay(ms)`` slows it; ``hang`` blocks until
  the RPC deadline (``rpc_timeout``) and then times out; ``drop``/``close`` lose the reply.
- ``claims.store.Workload``: the same for the migration progress query.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import failpoints
from failpoints import FailpointError, FailpointHangTimeout
from harness import journal

PATCH = failpoints.point("claims.store.PatchCNStore")
WORKLOAD = failpoints.point("claims.store.Workload")


class StoreError(Exception):
    """A failed store RPC (message as the operator would log it)."""


@dataclass
class StoreEntry:
    """What the store believes about one CN (keyed by pod name)."""

    state: str
    labels: list[dict[str, Any]] = field(default_factory=list)
    patches: int = 0


class CNStore:
    """A thread-safe in-memory store; one per operator instance."""

    def __init__(self, *, rpc_timeout: float = 5.0) -> None:
        self.rpc_timeout = rpc_timeout
        self._lock = threading.Lock()
        self.entries: dict[str, StoreEntry] = {}

    def _fault(self, point: failpoints.Failpoint, what: str) -> None:
        action = point.evaluate()
        if action is None:
            return
        if action.kind == "return":
            raise StoreError(f"{what}: {action.arg or 'does not exist'}")
        if action.kind in ("drop", "close"):
            raise StoreError(f"{what}: rpc reply lost ({action.kind})")
        try:
            action.apply_sync(deadline=time.monotonic() + self.rpc_timeout)
        except FailpointHangTimeout:
            raise StoreError(f"{what}: rpc timeout after {self.rpc_timeout:.1f}s") from None
        except FailpointError as exc:
            raise StoreError(f"{what}: {exc}") from None

    def patch_cn_store(
        self, pod: str, state: str, labels: list[dict[str, Any]] | None = None
    ) -> None:
        """HAKeeper ``PatchCNStore(state, labels)`` for the CN running in ``pod``.

        Raises:
            StoreError: injected failure, timeout, or "does not exist".
        """
        self._fault(PATCH, f"patch CN store {pod}")
        with self._lock:
            e = self.entries.setdefault(pod, StoreEntry(state=state))
            e.state = state
            if labels is not None:
                e.labels = list(labels)
            e.patches += 1
        journal.emit("claims.store", "patched", pod=pod, state=state)

    def workload(self, pod: str) -> dict[str, int]:
        """Connections/pipelines/replicas still on a CN (a constant: nothing really runs)."""
        self._fault(WORKLOAD, f"workload of {pod}")
        return {"connections": 1, "pipelines": 0, "replicas": 0}

    def state_of(self, pod: str) -> str | None:
        with self._lock:
            e = self.entries.get(pod)
            return e.state if e else None
