"""Failpoints: named places in code where a test injects faults, by name, at run time.

::

    import failpoints

    PAUSE = failpoints.point("shim.Pause.after")   # at import; ~free while disabled

    action = PAUSE.evaluate()              # None unless a term fires
    if action is not None:
        await action.apply_async(deadline)  # delay/error/panic/hang; the site handles the rest

    failpoints.enable("shim.Pause.after", "1*off->1*error(boom)")   # fail the 2nd call

The term language is specified in ``failpoints.grammar``; user docs are docs/failpoints.md.
The package is standalone (stdlib only) and never imports the harness.

Layering, each module one job: ``errors`` <- ``grammar`` (pure parsing) <- ``point``
(evaluation) <- ``registry`` (names, seed, observers; the only global state) <- ``sources``
(environment, annotations), ``control`` (HTTP server), ``client`` (HTTP client).

The module-level functions act on one process-wide ``Registry``. ``failpoints.list`` is an
alias of ``list_points`` kept out of ``__all__`` so ``import *`` never shadows the builtin.
``serve``, ``ControlServer`` and ``ControlClient`` are imported on first use, so a process
that only evaluates points does not pay for ``http.server``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import FailpointError, FailpointHangTimeout, FailpointPanic, FailpointSyntaxError
from .grammar import Term, Terms, parse
from .point import Action, Failpoint, Status, Trigger
from .registry import Registry
from .registry import default as _default
from .sources import from_annotations, load_env

if TYPE_CHECKING:
    from .client import ControlClient
    from .control import ControlServer, serve

__all__ = [
    "Action",
    "ControlClient",
    "ControlServer",
    "Failpoint",
    "FailpointError",
    "FailpointHangTimeout",
    "FailpointPanic",
    "FailpointSyntaxError",
    "Registry",
    "Status",
    "Term",
    "Terms",
    "Trigger",
    "add_observer",
    "disable",
    "enable",
    "from_annotations",
    "list_points",
    "load_env",
    "parse",
    "point",
    "release",
    "remove_observer",
    "reset",
    "seed",
    "serve",
    "status",
]

point = _default.point
enable = _default.enable
disable = _default.disable
release = _default.release
status = _default.status
list_points = _default.list_points
list = list_points  # gofail's name; see the module docstring
reset = _default.reset
seed = _default.seed
add_observer = _default.add_observer
remove_observer = _default.remove_observer

_LAZY = {"serve": "control", "ControlServer": "control", "ControlClient": "client"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'failpoints' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
