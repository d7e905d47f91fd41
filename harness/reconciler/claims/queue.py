"""A controller workqueue with client-go semantics: de-duplicated, delayed, rate-limited.

Why these semantics matter for the bugs: a key added while it is being processed is
processed again afterwards (never concurrently); a requeue-after is a timer, so a claim
whose Finalize keeps returning ``false`` comes back every ``requeue`` seconds — the
"Finalize 循环重试 60+ 次" rhythm of issue #591; and ``idle()`` (nothing queued, nothing
running, no timer pending) is what lets a check say "this state is final", because an idle
operator only moves again on a watch event.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque


class WorkQueue:
    """Keys (``name`` strings) for one controller; one or more workers call :meth:`get`."""

    def __init__(self, name: str, *, backoff: float = 0.005, backoff_max: float = 30.0) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._shutdown = False
        self.adds = 0

    # -- producers -------------------------------------------------------------------
    def add(self, key: str) -> None:
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            self.adds += 1
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed (at once when ``delay <= 0``)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        """Exponential per-key backoff after an error; returns the delay used."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self._backoff * (2**n), self._backoff_max)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """Reset the error backoff of ``key`` (after a successful reconcile)."""
        with self._cond:
            self._failures.pop(key, None)

    # -- consumers -------------------------------------------------------------------
    def _promote_due(self) -> float | None:
        """Move due timers into the queue; return seconds until the next one (or None)."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key not in self._dirty:
                self.adds += 1
                self._dirty.add(key)
                if key not in self._processing:
                    self._queue.append(key)
        return (self._delayed[0][0] - now) if self._delayed else None

    def get(self) -> str | None:
        """The next key to process (blocks); None once :meth:`shutdown` was called."""
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        """Mark ``key`` processed; if it was re-added meanwhile it is queued again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
            self._cond.notify_all()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    # -- observation ------------------------------------------------------------------
    def idle(self) -> bool:
        """Nothing queued, nothing being processed, no timer pending."""
        with self._cond:
            return not self._queue and not self._processing and not self._delayed

    def pending(self) -> dict[str, object]:
        """What is outstanding (for "did not settle" messages)."""
        with self._cond:
            return {
                "queued": list(self._queue),
                "processing": sorted(self._processing),
                "timers": sorted((k, round(t - time.monotonic(), 2)) for t, _, k in self._delayed),
            }
