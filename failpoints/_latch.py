"""A one-shot signal that both threads and asyncio tasks can wait on.

Why not ``threading.Event`` alone: an async ``hang`` waited through ``asyncio.to_thread``
would pin one default-executor thread per hanging request, and a few dozen hangs would stall
every other ``to_thread`` user of the loop. Async waiters here park on a future of their own
loop instead, and ``set()`` resolves it with ``call_soon_threadsafe`` from any thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["Latch"]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Latch:
    """Set once, never cleared; ``wait``/``wait_async`` return whether it was set in time."""

    __slots__ = ("_event", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        """Wake every waiter, now and in the future (idempotent, any thread)."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed, so nobody waits on it any more
                pass

    def is_set(self) -> bool:
        """Whether ``set()`` has been called."""
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Block the thread until set (True) or ``timeout`` seconds pass (False)."""
        return self._event.wait(timeout)

    async def wait_async(self, timeout: float | None) -> bool:
        """Suspend the task until set (True) or ``timeout`` seconds pass (False)."""
        import asyncio  # failpoints stays importable without asyncio for sync-only users

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            if self._event.is_set():
                return True
            self._waiters.append(entry)
        try:
            if timeout is None:
                await fut
                return True
            try:
                await asyncio.wait_for(fut, max(0.0, timeout))
            except TimeoutError:
                return self._event.is_set()
            return True
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
