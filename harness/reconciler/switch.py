"""A bug switch of a reference reconciler: where it lives and what it breaks.

Shared by every reconciler's ``bugs.py``: the switch name is the pre-fix behaviour, ``module``
is where it is checked (exactly one place, next to the code it changes), ``seed`` cites the
report and upstream commit it models, ``symptom`` is what a suite expects when it is on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Switch:
    """One bug switch."""

    name: str
    module: str
    seed: str
    symptom: str
