"""Named failpoints: cheap to evaluate when disabled, exact counting when enabled.

Why it is shaped like this: a failpoint sits on hot paths (every ttrpc call, every event), so
the disabled path is one attribute check with no lock and no allocation. When enabled,
``evaluate`` decides under the point's lock which term fires (see ``grammar`` for the rules)
and returns an ``Action``; it never sleeps or raises itself. Performing the action is the call
site's choice, with ``Action.apply_sync``/``apply_async`` covering the generic ones, so the
lock is never held while a fault plays out.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._latch import Latch
from .errors import FailpointError, FailpointHangTimeout, FailpointPanic
from .grammar import Terms

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Action", "Failpoint", "Status", "Trigger"]


@dataclass(frozen=True, slots=True)
class Trigger:
    """What observers receive each time a term fires (after the counters moved)."""

    name: str
    action: str  # the kind, e.g. "error"
    arg: str | None
    term: str  # canonical text of the fired term as enabled, e.g. "3*delay(10)"
    hits: int
    triggers: int


@dataclass(frozen=True, slots=True)
class Status:
    """A point's state. ``spec``/``remaining`` are ``None`` while it is disabled."""

    name: str
    spec: str | None
    remaining: str | None
    hits: int
    triggers: int

    @property
    def enabled(self) -> bool:
        """Whether a spec is active."""
        return self.spec is not None


@dataclass(frozen=True, slots=True)
class Action:
    """The fired term, handed to the call site.

    ``kind`` is one of ``grammar.ACTIONS``; ``arg`` is the raw argument text or ``None``.
    ``apply_sync``/``apply_async`` perform the generic part: ``delay`` sleeps, ``error`` and
    ``panic`` raise, ``hang`` blocks; ``off``, ``return``, ``close``, ``drop``,
    ``duplicate`` and ``hold`` do nothing there because only the site knows what they mean for it.
    """

    kind: str
    arg: str | None
    name: str
    term: str
    # set by release/disable/enable/reset: ends hangs fired before that moment
    _wake: Latch = field(default_factory=Latch, repr=False, compare=False)
    # set by disable/enable/reset: cuts delays short, so tear-down never waits them out
    _stop: Latch = field(default_factory=Latch, repr=False, compare=False)

    @property
    def count(self) -> int:
        """Extra copies a ``duplicate`` asks for (1 by default); 0 for other kinds."""
        if self.kind != "duplicate":
            return 0
        return int(self.arg) if self.arg else 1

    @property
    def seconds(self) -> float:
        """How long a ``delay`` sleeps; 0.0 for other kinds."""
        return int(self.arg) / 1000.0 if self.kind == "delay" and self.arg else 0.0

    def apply_sync(self, deadline: float | None = None) -> None:
        """Perform the generic part of the action in a thread.

        Args:
            deadline: a ``time.monotonic()`` instant bounding ``delay`` and ``hang``.

        Raises:
            FailpointError: ``error``.
            FailpointPanic: ``panic``.
            FailpointHangTimeout: ``hang`` was not released before ``deadline``.
        """
        timeout = self._prologue(deadline)
        if self.kind == "delay":
            self._stop.wait(timeout)
        elif self.kind == "hang":
            started = time.monotonic()
            if not self._wake.wait(timeout):
                raise FailpointHangTimeout(self.name, time.monotonic() - started)

    async def apply_async(self, deadline: float | None = None) -> None:
        """``apply_sync`` for asyncio code; waits park the task, never a thread.

        Raises:
            FailpointError: ``error``.
            FailpointPanic: ``panic``.
            FailpointHangTimeout: ``hang`` was not released before ``deadline``.
        """
        timeout = self._prologue(deadline)
        if self.kind == "delay":
            await self._stop.wait_async(timeout)
        elif self.kind == "hang":
            started = time.monotonic()
            if not await self._wake.wait_async(timeout):
                raise FailpointHangTimeout(self.name, time.monotonic() - started)

    def ended(self) -> bool:
        """Whether the point was released, disabled, re-enabled or reset since this fired.

        Why: a site that *holds* something (``hold``) must give it back when the fault is
        healed, not only when its trigger comes; this is how it learns the heal happened.
        """
        return self._wake.is_set()

    async def released(self) -> None:
        """Wait until :meth:`ended` (release, disable, re-enable or reset of the point)."""
        await self._wake.wait_async(None)

    def _prologue(self, deadline: float | None) -> float | None:
        """Raise for error/panic; otherwise the wait time (``None`` = no bound)."""
        if self.kind == "error":
            raise FailpointError(self.arg or f"failpoint {self.name}", name=self.name)
        if self.kind == "panic":
            raise FailpointPanic(self.arg or f"failpoint {self.name}", name=self.name)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if self.kind == "delay":
            return self.seconds if left is None else min(self.seconds, left)
        return left


class _Schedule:
    """The mutable state of one enabled spec; replaced wholesale by each ``enable``."""

    __slots__ = ("remaining", "rng", "stop", "terms", "texts", "wake")

    def __init__(self, terms: Terms, rng: random.Random) -> None:
        self.terms = terms
        self.texts = tuple(str(t) for t in terms)
        self.remaining = [t.count for t in terms]
        self.rng = rng
        self.wake = Latch()
        self.stop = Latch()

    def end(self) -> None:
        """Wake everything still blocked on behalf of this schedule."""
        self.wake.set()
        self.stop.set()


def point_rng(seed: int, name: str) -> random.Random:
    """The RNG of point ``name`` under ``seed``; independent of every other point."""
    # str seeds are hashed with SHA-512, so this is stable across processes and versions
    return random.Random(f"failpoints:{seed}:{name}")


class Failpoint:
    """A named point in the code. Get one with ``failpoints.point(name)``."""

    __slots__ = ("_lock", "_registered", "_registry", "_schedule", "hits", "name", "triggers")

    def __init__(self, name: str, registry: Registry) -> None:
        self.name = name
        self.hits = 0  # evaluations while enabled
        self.triggers = 0  # terms fired
        self._schedule: _Schedule | None = None
        self._lock = threading.Lock()
        self._registry = registry
        self._registered = False

    def __repr__(self) -> str:
        schedule = self._schedule
        spec = str(schedule.terms) if schedule is not None else "disabled"
        return f"<Failpoint {self.name} {spec} hits={self.hits} triggers={self.triggers}>"

    @property
    def enabled(self) -> bool:
        """Whether a spec is active."""
        return self._schedule is not None

    def evaluate(self) -> Action | None:
        """The action of the term that fires on this call, or ``None``.

        Disabled: one attribute check, no lock, no allocation (the benchmark holds this to
        0.5 µs). Enabled: counts a hit, picks the term under the lock, notifies observers.
        """
        if self._schedule is None:
            return None
        return self._evaluate_enabled()

    def _evaluate_enabled(self) -> Action | None:
        with self._lock:
            schedule = self._schedule
            if schedule is None:  # disabled between the check and the lock
                return None
            self.hits += 1
            for index, term in enumerate(schedule.terms):
                left = schedule.remaining[index]
                if left == 0:
                    continue
                if term.probability is not None and not (
                    schedule.rng.random() < term.probability / 100.0
                ):
                    continue  # a failed roll falls through to the next term (gofail)
                if left is not None:
                    schedule.remaining[index] = left - 1
                self.triggers += 1
                text = schedule.texts[index]
                action = Action(term.kind, term.arg, self.name, text, schedule.wake, schedule.stop)
                trigger = Trigger(self.name, term.kind, term.arg, text, self.hits, self.triggers)
                break
            else:
                return None
        self._registry._notify(trigger)
        return action

    def status(self) -> Status:
        """A consistent snapshot of spec, remaining state and counters."""
        with self._lock:
            schedule = self._schedule
            if schedule is None:
                return Status(self.name, None, None, self.hits, self.triggers)
            return Status(
                self.name,
                str(schedule.terms),
                str(self._remaining(schedule)),
                self.hits,
                self.triggers,
            )

    def remaining(self) -> Terms | None:
        """The remaining state as a spec (containerd's ``Marshal``), or ``None`` if disabled."""
        with self._lock:
            schedule = self._schedule
            return None if schedule is None else self._remaining(schedule)

    @staticmethod
    def _remaining(schedule: _Schedule) -> Terms:
        return Terms(
            tuple(
                t.with_count(left)
                for t, left in zip(schedule.terms, schedule.remaining, strict=True)
            )
        )

    # -- driven by the registry -------------------------------------------------------------

    def _enable(self, terms: Terms, seed: int) -> None:
        """Start ``terms`` from the top with zeroed counters and a fresh RNG."""
        new = _Schedule(terms, point_rng(seed, self.name))
        with self._lock:
            old, self._schedule = self._schedule, new
            self.hits = 0
            self.triggers = 0
        if old is not None:
            old.end()

    def _disable(self) -> None:
        """Stop firing; counters stay readable until the next enable or reset."""
        with self._lock:
            old, self._schedule = self._schedule, None
        if old is not None:
            old.end()

    def _release(self) -> None:
        """End every hang fired so far; hangs fired later block again."""
        with self._lock:
            schedule = self._schedule
            if schedule is None:
                return
            wake, schedule.wake = schedule.wake, Latch()
        wake.set()

    def _reseed(self, seed: int) -> None:
        with self._lock:
            if self._schedule is not None:
                self._schedule.rng = point_rng(seed, self.name)

    def _reset(self) -> None:
        self._disable()
        with self._lock:
            self.hits = 0
            self.triggers = 0
