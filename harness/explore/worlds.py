"""The explorer's worlds, by name, and what each one must provide (issue #12 §1–2).

Why a registry of module paths and not imports: ``reconverge --help`` and a saved file's
parse must not import grpc, the kubernetes client or a provider; a world's hooks module is
imported only when that world is asked for. The engine, the CLI, ``reconverge repro`` and
the merge know nothing of a world beyond these hooks.

A world's hooks module (``harness/explore/<world>/hooks.py``) defines:

- ``STEPS``: ``{op: Step class}``, its vocabulary (``schedule.step_from_json`` parses with it);
- ``validate_step(step, source)``: reject a step the world cannot perform (one clear error);
- ``validate(options)``: reject bad options (an unknown bug switch, a fault prefix that
  matches nothing) before anything starts;
- ``strategy(options, log)``: the Hypothesis strategy of its schedules, noting every draw
  in ``log`` (a :class:`harness.explore.draws.DrawLog`);
- ``runner(seed)``: a context manager that starts the world's real servers and yields
  ``run(schedule, label) -> Result``; leaving it stops them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from harness.errors import ReconvergeError

#: world name → its hooks module
WORLDS: dict[str, str] = {
    "sandbox": "harness.explore.sandbox.hooks",
    "claims": "harness.explore.claims.hooks",
}


def hooks(name: str) -> ModuleType:
    """The hooks module of world ``name`` (one clear error for an unknown one)."""
    path = WORLDS.get(name)
    if path is None:
        raise ReconvergeError(f"unknown world {name!r}; known: {', '.join(WORLDS)}")
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and path.startswith(exc.name):
            raise ReconvergeError(f"world {name!r} is not built yet ({path} is missing)") from None
        raise
