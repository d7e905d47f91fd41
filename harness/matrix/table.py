"""The version x case table and the behaviour changes between neighbouring releases.

Pure functions over :class:`Cell` values, so the terminal summary, ``matrix.json`` and the
CLI print the same thing and a unit test can check it without running containerd.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from harness.matrix import tags
from harness.matrix.upstream import Judgement


@dataclass(frozen=True)
class Cell:
    """One case on one release."""

    case: str  # the node id without the release (a row)
    version: str  # the matrix label (a column)
    outcome: str  # the verdict (CAUGHT, CONVERGED, MISSED, …) or the test outcome
    behaviour: str | None = None  # observed upstream behaviour (probe variants only)
    declared: str | None = None
    reference: str = ""
    nodeid: str = ""

    @property
    def judgement(self) -> Judgement:
        return Judgement(self.behaviour, self.declared)

    def text(self) -> str:
        extra = self.judgement.text()
        return f"{self.outcome} {extra}".strip()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"relation": self.judgement.relation, "text": self.text()}


@dataclass(frozen=True)
class Change:
    """A case whose upstream behaviour differs between two neighbouring releases."""

    case: str
    older: str
    newer: str
    before: str
    after: str
    reference: str

    def text(self) -> str:
        ref = f" — {self.reference}" if self.reference else ""
        return (
            f"behaviour change: {self.case}: {self.older} {self.before} -> "
            f"{self.newer} {self.after}{ref}"
        )


def _order(versions: Iterable[str]) -> list[str]:
    return sorted(set(versions), key=lambda v: tags.parse(v).key)


def changes(cells: Iterable[Cell]) -> list[Change]:
    """Per row, consecutive observed releases (semver order) whose behaviour differs."""
    rows: dict[str, dict[str, Cell]] = {}
    for c in cells:
        if c.behaviour is not None:
            rows.setdefault(c.case, {})[c.version] = c
    out = []
    for case, by_v in rows.items():
        seq = [by_v[v] for v in _order(by_v)]
        for a, b in itertools.pairwise(seq):
            if a.behaviour != b.behaviour:
                out.append(
                    Change(
                        case,
                        a.version,
                        b.version,
                        a.behaviour or "",
                        b.behaviour or "",
                        b.reference,
                    )
                )
    return out


def render(cells: list[Cell], versions: list[str] | None = None) -> str:
    """Rows cases, columns releases (the order asked for, else semver); ``n/a`` if not run."""
    cols = versions or _order(c.version for c in cells)
    cases = sorted({c.case for c in cells})
    at = {(c.case, c.version): c for c in cells}
    head = ["case", *cols]
    rows = [
        [case, *(at[(case, v)].text() if (case, v) in at else "n/a" for v in cols)]
        for case in cases
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def summary(cells: list[Cell], versions: list[str] | None = None) -> str:
    """The table, then one line per behaviour change and per cell that differs from its
    declaration (the only cells that fail a matrix run)."""
    out = [render(cells, versions)]
    out += [ch.text() for ch in changes(cells)]
    for c in cells:
        if c.judgement.relation == "differs":
            out.append(
                f"DIFFERS from the declaration: {c.case} on {c.version}: observed "
                f"{c.behaviour}, declared {c.declared} ({c.reference})"
            )
    return "\n".join(out)
