"""The per-key FIFO backoff queue of containerd's CRI event monitor (§2.2), in asyncio.

Semantics kept exactly, because seed b depends on them: an event whose key already has a
queue is appended behind it (per-key FIFO survives a failing event); a new key's queue
expires after ``backoff_init``; appending does not move the expiry; on each tick every
expired queue is taken out whole and replayed in order, and at the first failure the
unprocessed suffix goes back with its duration doubled (capped). Handling is serial.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from harness import journal
from harness.reconciler.sandbox.timing import Timing

Handler = Callable[[Any], Awaitable[None]]


@dataclass
class _KeyQueue:
    events: list[Any]
    expires: float
    duration: float


@dataclass
class BackoffQueue:
    """Serial handling with per-key backoff; ``run()`` is the ticker."""

    handler: Handler
    timing: Timing
    name: str = "backoff"
    queues: dict[str, _KeyQueue] = field(default_factory=dict)
    serial: asyncio.Lock = field(default_factory=asyncio.Lock)
    replays: int = 0

    async def _call(self, evt: Any) -> None:
        await asyncio.wait_for(self.handler(evt), self.timing.handle_event)

    async def handle(self, key: str, evt: Any) -> None:
        """An incoming event: queue behind its key, or handle now and queue on failure."""
        async with self.serial:
            if key in self.queues:
                self.queues[key].events.append(evt)
                journal.emit("reconciler", "backoff_append", queue=self.name, key=key)
                return
            try:
                await self._call(evt)
            except Exception as exc:  # any handler failure goes to the backoff queue
                self._enqueue(key, evt, exc)

    def backoff(self, key: str, evt: Any, error: BaseException | None = None) -> None:
        """The public enqueue (used by exit watchers whose inline handling failed)."""
        self._enqueue(key, evt, error)

    def _enqueue(self, key: str, evt: Any, error: BaseException | None) -> None:
        q = self.queues.get(key)
        if q is None:
            d = self.timing.backoff_init
            self.queues[key] = _KeyQueue([evt], time.monotonic() + d, d)
        else:
            q.events.append(evt)
        journal.emit(
            "reconciler",
            "backoff_enqueue",
            queue=self.name,
            key=key,
            error=f"{type(error).__name__}: {error}" if error else "",
            depth=len(self.queues[key].events),
        )

    async def tick(self) -> None:
        """Replay every expired key's queue in order (the 1 s ticker upstream)."""
        async with self.serial:
            now = time.monotonic()
            for key in [k for k, q in self.queues.items() if q.expires <= now]:
                q = self.queues.pop(key)
                for i, evt in enumerate(q.events):
                    self.replays += 1
                    journal.emit("reconciler", "backoff_replay", queue=self.name, key=key)
                    try:
                        await self._call(evt)
                    except Exception as exc:  # re-insert the unprocessed suffix
                        d = min(q.duration * 2, self.timing.backoff_max)
                        self.queues[key] = _KeyQueue(q.events[i:], time.monotonic() + d, d)
                        journal.emit(
                            "reconciler",
                            "backoff_retry_later",
                            queue=self.name,
                            key=key,
                            error=f"{type(exc).__name__}: {exc}",
                            in_s=round(d, 3),
                        )
                        break

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.timing.backoff_tick)
            await self.tick()

    def depth(self) -> dict[str, int]:
        return {k: len(q.events) for k, q in self.queues.items()}
