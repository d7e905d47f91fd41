"""Writing journal records: a per-process JSON-lines file under ``<run_dir>/journal``.

Child processes (the shim stub, a reconciler subprocess) find the run directory through
the ``RECONVERGE_RUN_DIR`` environment variable, which providers pass down; containerd
passes its environment on to the shims it launches, so shim records land in the same run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from harness.journal import bridge
from harness.journal.record import Record

ENV_RUN_DIR = "RECONVERGE_RUN_DIR"


class Journal:
    """Appends records for one process. Thread-safe; cheap when disabled (no run dir).

    Every record is also offered to :mod:`logging` (``reconverge.<component>``, see
    :mod:`harness.journal.bridge`), written or not, so ``--log-cli-level=INFO`` shows it live.
    """

    def __init__(self, run_dir: Path | None, proc: str) -> None:
        self.proc = proc
        self.pid = os.getpid()
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.path: Path | None = None
        if run_dir is not None:
            jdir = Path(run_dir) / "journal"
            jdir.mkdir(parents=True, exist_ok=True)
            safe = proc.replace("/", "_").replace(" ", "_")
            self.path = jdir / f"{safe}.{self.pid}.jsonl"
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    @property
    def enabled(self) -> bool:
        """True when records are written somewhere."""
        return self._fd is not None

    def emit(self, component: str, event: str, **fields: Any) -> Record:
        """Record one event now and return it."""
        rec = Record(
            mono=time.monotonic(),
            wall=time.time(),
            pid=self.pid,
            proc=self.proc,
            component=component,
            event=event,
            fields=fields,
        )
        if self._fd is not None:
            data = (rec.to_json() + "\n").encode()
            with self._lock:
                if self._fd is not None:
                    try:
                        os.write(self._fd, data)
                    except OSError:
                        pass  # a full or vanished run dir must not crash the caller
        bridge.forward(rec)
        return rec

    def close(self) -> None:
        """Stop writing; later emits are dropped silently."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_current = Journal(None, "null")
_current_lock = threading.Lock()


def configure(run_dir: Path | None, proc: str) -> Journal:
    """Make a journal for this process the current one and hook failpoint triggers into it.

    The previous journal is left open: its owner (an enclosing run) restores it with
    :func:`set_current` when the inner run ends.
    """
    j = Journal(run_dir, proc)
    set_current(j)
    _install_failpoint_observer()
    return j


def set_current(j: Journal) -> Journal:
    """Swap the current journal; returns the one it replaced."""
    global _current
    with _current_lock:
        old, _current = _current, j
    return old


def from_env(proc: str) -> Journal:
    """Configure from ``RECONVERGE_RUN_DIR`` (a no-op journal when unset)."""
    run_dir = os.environ.get(ENV_RUN_DIR)
    return configure(Path(run_dir) if run_dir else None, proc)


def current() -> Journal:
    """The journal of this process (a disabled one until configured)."""
    return _current


def emit(component: str, event: str, **fields: Any) -> Record:
    """Record an event on the current journal."""
    return _current.emit(component, event, **fields)


_observer_installed = False


def _install_failpoint_observer() -> None:
    """Journal every failpoint trigger; failpoints itself never imports the harness."""
    global _observer_installed
    if _observer_installed:
        return
    try:
        import failpoints
    except ImportError:  # pragma: no cover - failpoints ships with the harness
        return

    def _on_trigger(trigger: Any) -> None:
        emit(
            "failpoint",
            "trigger",
            name=trigger.name,
            action=trigger.action,
            arg=trigger.arg,
            term=trigger.term,
            hits=trigger.hits,
            triggers=trigger.triggers,
        )

    add = getattr(failpoints, "add_observer", None)
    if add is None:  # pragma: no cover - only while failpoints is half-installed
        return
    add(_on_trigger)
    _observer_installed = True
