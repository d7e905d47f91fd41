"""Every draw of the current example, with its index (``--check-determinism`` diffs them).

World-neutral: each world's strategy notes its draws here; the engine journals them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DrawLog:
    """Draws of the current example: ``(index, what, value)``; ``reset`` per example."""

    draws: list[tuple[int, str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.draws = []

    def note(self, what: str, value: Any) -> Any:
        """Journal one draw; a set is journaled sorted (JSON has no sets, order must be
        stable for the diff)."""
        shown = sorted(value) if isinstance(value, (set, frozenset)) else value
        self.draws.append((len(self.draws), what, shown))
        return value
