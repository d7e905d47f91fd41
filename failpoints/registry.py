"""The registry of named points: the only global state in failpoints.

Why names and not objects: the code that evaluates a point (``point("shim.Pause.after")``
at import time) and the code that enables it (a test, an environment variable, an HTTP
request) never see each other, so they meet on the name. Enabling a name before any code
has called ``point()`` for it works: the registry creates the point and ``point()`` later
returns that same object.

``reset()`` disables everything and zeroes the counters but keeps registered points (call
sites hold them in module globals) and observers (the journal installs one per process).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping

from .errors import FailpointSyntaxError
from .grammar import Terms, check_name, parse
from .point import Failpoint, Status, Trigger

__all__ = ["ENV_SEED", "Observer", "Registry", "default"]

ENV_SEED = "RECONVERGE_SEED"

Observer = Callable[[Trigger], None]

_log = logging.getLogger("failpoints")


class Registry:
    """Named points, their specs, the seed and the trigger observers. Thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._points: dict[str, Failpoint] = {}
        self._observers: tuple[Observer, ...] = ()  # copy-on-write: read without the lock
        self._seed = seed

    def __repr__(self) -> str:
        return f"<Registry points={len(self._points)} seed={self._seed}>"

    # -- points -----------------------------------------------------------------------------

    def point(self, name: str) -> Failpoint:
        """Register ``name`` (idempotent) and return its one ``Failpoint``.

        Raises:
            ValueError: the name is not 1 to 128 of ``A-Za-z0-9._:-``.
        """
        fp = self._points.get(name)
        if fp is None:
            fp = self._get_or_create(name)
        fp._registered = True
        return fp

    def _get_or_create(self, name: str) -> Failpoint:
        check_name(name)
        with self._lock:
            return self._point_locked(name)

    # -- control ----------------------------------------------------------------------------

    def enable(self, name: str, spec: str | Terms) -> Terms:
        """Start ``spec`` on ``name`` from the top (counters zeroed, RNG re-seeded).

        Re-enabling ends hangs and delays still running under the previous spec.

        Raises:
            FailpointSyntaxError: ``spec`` is text that does not parse (names the point).
            ValueError: bad name.
        """
        check_name(name)
        terms = self._terms(name, spec)
        with self._lock:
            self._point_locked(name)._enable(terms, self.current_seed())
        return terms

    def enable_many(self, specs: Mapping[str, str | Terms]) -> dict[str, Terms]:
        """Enable several points, all or nothing: every name and spec is checked first.

        Raises:
            FailpointSyntaxError, ValueError: as ``enable``; then nothing was enabled.
        """
        checked = {check_name(name): self._terms(name, spec) for name, spec in specs.items()}
        with self._lock:
            seed = self.current_seed()
            for name, terms in checked.items():
                self._point_locked(name)._enable(terms, seed)
        return checked

    def _point_locked(self, name: str) -> Failpoint:
        """The point for a checked ``name``, created if new; the caller holds the lock."""
        fp = self._points.get(name)
        if fp is None:
            fp = self._points[name] = Failpoint(name, self)
        return fp

    @staticmethod
    def _terms(name: str, spec: str | Terms) -> Terms:
        if isinstance(spec, Terms):
            return spec
        try:
            return parse(spec.strip() if isinstance(spec, str) else spec)
        except FailpointSyntaxError as exc:
            raise exc.with_context(name=name) from None

    def disable(self, name: str) -> bool:
        """Stop ``name`` firing and end its hangs and delays; False if the name is unknown."""
        fp = self._points.get(name)
        if fp is None:
            return False
        fp._disable()
        return True

    def release(self, name: str) -> bool:
        """End every ``hang`` of ``name`` fired so far; False if the name is unknown."""
        fp = self._points.get(name)
        if fp is None:
            return False
        fp._release()
        return True

    def status(self, name: str) -> Status:
        """Spec, remaining state and counters of ``name``.

        Raises:
            KeyError: nobody registered or enabled ``name``.
        """
        fp = self._points.get(name)
        if fp is None:
            raise KeyError(name)
        return fp.status()

    def list_points(self) -> dict[str, Status]:
        """Every known name (registered or enabled), sorted, with its status."""
        with self._lock:
            points = sorted(self._points.items())
        return {name: fp.status() for name, fp in points}

    def reset(self) -> None:
        """Disable all, zero counters, forget names nobody registered, seed from env again."""
        with self._lock:
            points = list(self._points.values())
            self._points = {fp.name: fp for fp in points if fp._registered}
            self._seed = None
        for fp in points:
            fp._reset()

    # -- seed -------------------------------------------------------------------------------

    def seed(self, n: int | None) -> None:
        """Seed every point's RNG from ``n`` (``None``: back to ``RECONVERGE_SEED`` or 0).

        Enabled points restart their random sequence, so ``seed`` then ``enable`` and
        ``enable`` then ``seed`` replay the same decisions.
        """
        if n is not None and (not isinstance(n, int) or isinstance(n, bool)):
            raise TypeError(f"seed must be an int, not {type(n).__name__}")
        with self._lock:
            self._seed = n
            seed = self.current_seed()
            points = list(self._points.values())
        for fp in points:
            fp._reseed(seed)

    def current_seed(self) -> int:
        """The seed in force: ``seed(n)``, else the ``RECONVERGE_SEED`` variable, else 0.

        Raises:
            ValueError: ``RECONVERGE_SEED`` is set but is not an integer.
        """
        if self._seed is not None:
            return self._seed
        text = os.environ.get(ENV_SEED, "").strip()
        if not text:
            return 0
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{ENV_SEED} must be an integer, got {text!r}") from None

    # -- observers --------------------------------------------------------------------------

    def add_observer(self, callback: Observer) -> None:
        """Call ``callback(trigger)`` on every trigger, in the evaluating thread.

        An observer that raises is logged on the ``failpoints`` logger and otherwise
        ignored: a broken journal must not change what the code under test sees.
        """
        with self._lock:
            if callback not in self._observers:
                self._observers = (*self._observers, callback)

    def remove_observer(self, callback: Observer) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            self._observers = tuple(cb for cb in self._observers if cb != callback)

    def _notify(self, trigger: Trigger) -> None:
        for callback in self._observers:
            try:
                callback(trigger)
            except Exception:
                _log.exception("failpoint observer %r failed on %s", callback, trigger)


default = Registry()
"""The process-wide registry behind the module-level functions of ``failpoints``."""
