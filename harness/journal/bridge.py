"""Journal records, also as :mod:`logging` records under the ``reconverge`` logger.

Why: the journal is for the timeline after the fact, but someone watching a run live
reaches for ``pytest --log-cli-level=INFO`` (or their own logging config); each record
then shows up as it happens, one child logger per actor (``reconverge.shim``,
``reconverge.failpoint``, …) so a level or handler can be set per actor.

Why ``isEnabledFor`` first: ``emit`` sits on hot paths (every ttrpc call, every failpoint
trigger) of processes that never configure logging — the shim daemons, a plain pytest
run. There the root logger stays at WARNING and a record costs one cached level check;
nothing is formatted unless a handler will see it.
"""

from __future__ import annotations

import logging
import os
import sys

from harness.journal.record import Record

ROOT = "reconverge"
LEVEL = logging.INFO
_MAX_VALUE = 200  # characters of one field value in a log line (the journal keeps all)

_loggers: dict[str, logging.Logger] = {}
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def logger_for(component: str) -> logging.Logger:
    """``reconverge.<component>`` (cached: ``logging.getLogger`` takes a module lock)."""
    log = _loggers.get(component)
    if log is None:
        safe = component.replace(":", ".").strip(".") or "journal"
        log = _loggers.setdefault(component, logging.getLogger(f"{ROOT}.{safe}"))
    return log


def forward(rec: Record) -> None:
    """Log ``rec`` at INFO when someone listens; never raises into the emitting code."""
    log = logger_for(rec.component)
    if not log.isEnabledFor(LEVEL):
        return
    try:
        log.info(
            "%s %s %s",
            rec.proc,
            f"{rec.component}.{rec.event}",
            _fields(rec),
            extra={"reconverge_record": rec},
            stacklevel=_stacklevel(),
        )
    except Exception:  # a broken handler must not break the harness (logging reports it)
        pass


def _stacklevel() -> int:
    """Point the log record's file:line at whoever called ``journal.emit``, not at us."""
    level, frame = 2, sys._getframe(2)  # forward() is level 1, its caller level 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    return level


def _fields(rec: Record) -> str:
    """``k=v`` pairs, each value cut at :data:`_MAX_VALUE` characters."""
    parts = []
    for key, value in rec.fields.items():
        text = str(value)
        if len(text) > _MAX_VALUE:
            text = text[:_MAX_VALUE] + "…"
        parts.append(f"{key}={text}")
    return " ".join(parts)
