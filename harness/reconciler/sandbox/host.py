"""Runs a reconciler on its own asyncio loop in a thread, with a blocking API for tests.

Why a thread: a suite case is a plain pytest function that must keep asserting and waiting
on conditions while the reconciler's loops (events, backoff, DeadGC, exit watchers) keep
running; the reconciler stays pure asyncio, and only this module knows about threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ReconvergeError
from harness.providers.containerd_client import ContainerdClient
from harness.reconciler.sandbox.errors import SandboxError
from harness.reconciler.sandbox.reconciler import SandboxReconciler, Write
from harness.reconciler.sandbox.runtime import Runtime
from harness.reconciler.sandbox.timing import Timing

T = TypeVar("T")


class ReconcilerHost:
    """One reconciler (and its restarts) against one containerd namespace."""

    def __init__(
        self,
        *,
        target: str,
        namespace: str,
        state_dir: Path,
        store_path: Path,
        runtime_name: str,
        bugs: Iterable[str] = (),
        timing: Timing | None = None,
    ) -> None:
        self.target = target
        self.namespace = namespace
        self.state_dir = state_dir
        self.store_path = store_path
        self.runtime_name = runtime_name
        self.bugs = frozenset(bugs)
        self.timing = timing or Timing()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="sandbox-reconciler", daemon=True)
        self.rec: SandboxReconciler | None = None
        self.client: ContainerdClient | None = None
        self.generation = 0
        self._incarnations: dict[str, int] = {}  # shared with every reconciler generation

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the reconciler's loop and wait for it (bounded)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise ReconvergeError(f"reconciler call did not finish in {timeout:.0f}s") from None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> ReconcilerHost:
        self._thread.start()
        self.call(self._boot(recover=False))
        return self

    async def _boot(self, *, recover: bool) -> None:
        self.client = ContainerdClient(self.target, self.namespace)
        try:
            await self.client.ensure_namespace()
        except BaseException:
            await self.client.close()  # a boot that failed (containerd unreachable) owns it
            raise
        runtime = Runtime(self.client, self.state_dir)
        self.rec = SandboxReconciler(
            runtime,
            self.store_path,
            runtime_name=self.runtime_name,
            bugs=self.bugs,
            timing=self.timing,
            generation=self.generation,
            incarnations=self._incarnations,
        )
        await self.rec.start(recover=recover)

    def crash(self) -> None:
        """kill -9 the reconciler (records on disk stay as they were)."""
        self.call(self._crash())

    async def _crash(self) -> None:
        if self.rec is not None:
            await self.rec.crash()
        if self.client is not None:
            await self.client.close()

    def restart(self) -> None:
        """A new reconciler on the same store: reload, re-arm watchers, no event replay."""
        self.generation += 1
        self.call(self._boot(recover=True))

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self.call(self._crash(), timeout=15)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()

    # -- the orchestrator's calls --------------------------------------------------------------
    @property
    def r(self) -> SandboxReconciler:
        if self.rec is None:
            raise ReconvergeError("reconciler not started")
        return self.rec

    def create(self, sid: str, annotations: dict[str, str] | None = None) -> None:
        self.call(self.r.create(sid, annotations))

    def pause(self, sid: str, timeout: float | None = None) -> SandboxError | None:
        """Pause; returns the error the caller would see (None on success)."""
        return self._outcome(self.r.pause(sid, timeout))

    def resume(self, sid: str, timeout: float | None = None) -> SandboxError | None:
        return self._outcome(self.r.resume(sid, timeout))

    def stop_sandbox(self, sid: str, timeout: float) -> SandboxError | None:
        return self._outcome(self.r.stop_sandbox(sid, timeout))

    def remove_sandbox(self, sid: str) -> SandboxError | None:
        return self._outcome(self.r.remove_sandbox(sid))

    def start_pause(self, sid: str, timeout: float | None = None) -> Any:
        """Begin a pause without waiting (a concurrent.futures.Future of its outcome)."""
        return asyncio.run_coroutine_threadsafe(self._catch(self.r.pause(sid, timeout)), self.loop)

    def start_resume(self, sid: str, timeout: float | None = None) -> Any:
        """Begin a resume without waiting (a concurrent.futures.Future of its outcome)."""
        return asyncio.run_coroutine_threadsafe(self._catch(self.r.resume(sid, timeout)), self.loop)

    def call_soon_stop(self, sid: str, timeout: float) -> Any:
        """Begin a stop without waiting (a concurrent.futures.Future of its outcome)."""
        return asyncio.run_coroutine_threadsafe(
            self._catch(self.r.stop_sandbox(sid, timeout)), self.loop
        )

    def _outcome(self, coro: Coroutine[Any, Any, Any]) -> SandboxError | None:
        return self.call(self._catch(coro))

    @staticmethod
    async def _catch(coro: Coroutine[Any, Any, Any]) -> SandboxError | None:
        try:
            await coro
        except SandboxError as exc:
            return exc
        return None

    def deadgc_tick(self) -> None:
        """Run one DeadGC pass now (besides the periodic ones)."""
        from harness.reconciler.sandbox import deadgc

        self.call(deadgc.tick(self.r))

    # -- what checkers read --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """View, in-flight work and the write log, read on the reconciler's own loop."""

        async def read() -> dict[str, Any]:
            r = self.r
            return {
                "view": r.view(),
                "busy": r.busy(),
                "writes": list(r.writes),
                "deadgc_ticks": r.deadgc_ticks,
                "last_rpc_end": r.runtime.last_call_end,
                "generation": self.generation,
            }

        return self.call(read(), timeout=10)

    def pid(self, sid: str) -> int | None:
        """The task pid the record holds for ``sid`` (None: no record, or no pid yet)."""

        async def read() -> int | None:
            sb = self.r.sandboxes.get(sid)
            return (sb.first.pid or None) if sb is not None else None

        return self.call(read(), timeout=10)

    def incarnation(self, sid: str) -> int | None:
        """How many times ``sid`` was created through this host (None: never): it grows
        each time the id is created again, across reconciler restarts, so a checker can
        tell a re-created sandbox from the one it replaced."""

        async def read() -> int | None:
            return self._incarnations.get(sid)

        return self.call(read(), timeout=10)

    def writes(self) -> list[Write]:
        return list(self.snapshot()["writes"])
