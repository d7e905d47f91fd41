"""The release x case view of a containerd version-matrix run on the report page.

Why this module reads the matrix's own model (:mod:`harness.matrix.table`) instead of the
verdict rows: a cell's meaning — the verdict *and* the observed upstream behaviour against
the declaration next to the case — is decided there once, for the terminal table and
``matrix.json``; the page must say the very same thing. Verdict rows carry the release
(``versions.containerd_version``) but not the declaration, so they cannot rebuild a cell.

Two sources, one shape (:class:`MatrixView`):

- a live session (:func:`from_config`): the cells the matrix plugin keeps in its stash —
  the session page is written before the matrix plugin writes ``matrix.json``;
- an artifacts directory read back later (:func:`load`): ``<dir>/matrix.json``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.matrix import table, tags

if TYPE_CHECKING:
    import pytest

#: the file the matrix plugin writes into ``--reconverge-artifacts``
FILE_NAME = "matrix.json"
#: outcomes drawn green (the expected verdict of a variant, or a plumbing pass)
_GOOD = frozenset({"PASSED", "CONVERGED", "CAUGHT"})


@dataclass(frozen=True)
class MatrixView:
    """The cells of a matrix run and its columns in the order the run asked for them."""

    versions: tuple[str, ...]
    cells: tuple[table.Cell, ...]

    @property
    def cases(self) -> list[str]:
        return sorted({c.case for c in self.cells})

    @property
    def changes(self) -> list[table.Change]:
        """Behaviour changes between neighbouring observed releases (the matrix's rule)."""
        return table.changes(self.cells)

    @property
    def differing(self) -> list[table.Cell]:
        """Cells whose observed behaviour contradicts their declaration (they fail the run)."""
        return [c for c in self.cells if c.judgement.relation == "differs"]

    def at(self, case: str, version: str) -> table.Cell | None:
        for c in self.cells:
            if c.case == case and c.version == version:
                return c
        return None

    def text(self) -> str:
        """The terminal summary of the same cells (what the page must agree with)."""
        return table.summary(list(self.cells), list(self.versions))


def _columns(cells: Sequence[table.Cell], versions: Sequence[str] | None) -> tuple[str, ...]:
    """The asked order; else semver order of the releases the cells name."""
    if versions:
        return tuple(versions)
    return tuple(tags.ordered([c.version for c in cells], pre=True))


def from_cells(
    cells: Sequence[table.Cell], versions: Sequence[str] | None = None
) -> MatrixView | None:
    """A view of ``cells`` (None when there are none: not a matrix run)."""
    if not cells:
        return None
    return MatrixView(_columns(cells, versions), tuple(cells))


def from_document(doc: Any) -> MatrixView | None:
    """A view of ``matrix.json``'s content; None for anything that is not one."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("cells"), list):
        return None
    fields = table.Cell.__dataclass_fields__
    cells = []
    for raw in doc["cells"]:
        if not isinstance(raw, Mapping) or not {"case", "version", "outcome"} <= set(raw):
            continue
        cells.append(table.Cell(**{k: raw[k] for k in fields if k in raw}))
    versions = [str(v) for v in doc.get("versions") or [] if isinstance(v, str)]
    return from_cells(cells, versions)


def load(directory: Path) -> MatrixView | None:
    """``<directory>/matrix.json`` as a view, or None when absent or unreadable."""
    try:
        doc = json.loads((directory / FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    return from_document(doc)


def from_config(config: pytest.Config) -> MatrixView | None:
    """The live session's cells, when it ran with ``--reconverge-containerd``.

    Without the option the matrix plugin prints no table, and the page shows none either
    (a case's declared ``default`` releases alone do not make a matrix run).
    """
    from harness.errors import ReconvergeError
    from harness.matrix import plugin, versions

    raw = config.getoption("reconverge_containerd", default=None)
    if not raw:
        return None
    try:
        labels = versions.parse_list(str(raw))
    except ReconvergeError:
        labels = []
    return from_cells(plugin.cells(config), labels)


# -- HTML ---------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell_html(cell: table.Cell | None, changed: table.Change | None) -> str:
    if cell is None:
        return '<td class="mx-cell mx-na">n/a</td>'
    j = cell.judgement
    if cell.behaviour is not None:  # a probe: judged by upstream behaviour, not the variant
        kind = "good" if j.acceptable else "bad"
    else:
        kind = "good" if cell.outcome in _GOOD else "skip" if cell.outcome == "SKIPPED" else "bad"
    classes = ["mx-cell", f"mx-{j.relation.replace(' ', '-')}"]
    if changed is not None:
        classes.append("mx-changed")
    parts = [f'<span class="badge {kind}">{_e(cell.outcome)}</span>']
    if cell.behaviour is not None:  # the terminal's words: "leaks (as declared)"
        rest = j.text().removeprefix(cell.behaviour)
        parts.append(
            f' <span class="mx-behaviour">{_e(cell.behaviour)}</span>'
            f'<span class="mx-relation">{_e(rest)}</span>'
        )
    if changed is not None:
        parts.append(
            f'<div class="mx-note mx-change-mark">changed since {_e(changed.older)}: '
            f"{_e(changed.before)} &rarr; {_e(changed.after)}</div>"
        )
    title = cell.nodeid + (f" — {cell.reference}" if cell.reference else "")
    return (
        f'<td class="{" ".join(classes)}" data-case="{_e(cell.case)}" '
        f'data-version="{_e(cell.version)}" data-text="{_e(cell.text())}" '
        f'title="{_e(title)}">{"".join(parts)}</td>'
    )


def render(view: MatrixView | None) -> str:
    """The ``#matrix`` section: rows cases, columns releases, then changes and differences."""
    if view is None:
        return ""
    changed = {(ch.case, ch.newer): ch for ch in view.changes}
    head = "".join(f'<th class="mx-version">{_e(v)}</th>' for v in view.versions)
    body = []
    for case in view.cases:
        refs = {c.reference for c in view.cells if c.case == case and c.reference}
        ref = f'<div class="mx-note">{_e("; ".join(sorted(refs)))}</div>' if refs else ""
        cells = "".join(_cell_html(view.at(case, v), changed.get((case, v))) for v in view.versions)
        body.append(f'<tr><th class="mx-case">{_e(case)}{ref}</th>{cells}</tr>')
    changes = "".join(f'<li class="mx-change">{_e(ch.text())}</li>' for ch in view.changes)
    differs = "".join(
        f'<li class="mx-differs">DIFFERS from the declaration: {_e(c.case)} on '
        f"{_e(c.version)}: observed {_e(c.behaviour)}, declared {_e(c.declared)} "
        f"({_e(c.reference)})</li>"
        for c in view.differing
    )
    return (
        '<section id="matrix"><h2>containerd releases &times; cases</h2>'
        '<p class="none">Each cell: the verdict, then the upstream behaviour the probe variant '
        "observed against the one declared next to the case (as declared / undeclared / "
        "DIFFERS). A behaviour change between neighbouring releases is upstream's, not a "
        "failure; only a cell that differs from its declaration fails the run.</p>"
        f'<table class="matrix"><thead><tr><th>case</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        "<h3>Behaviour changes between neighbouring releases</h3>"
        + (f'<ul id="matrix-changes">{changes}</ul>' if changes else '<p class="none">none</p>')
        + (
            f'<h3>Differences from the declaration</h3><ul id="matrix-differs">{differs}</ul>'
            if differs
            else ""
        )
        + "</section>"
    )


CSS = """
table.matrix td.mx-cell{min-width:120px}
table.matrix th.mx-case{font-weight:normal;font-family:monospace;font-size:12px;max-width:520px;
 word-break:break-all}
.mx-note{font-size:11px;color:#666;font-family:system-ui,sans-serif}
.mx-relation{color:#666;font-size:12px}.mx-behaviour{font-weight:600}
td.mx-as-declared{background:#eef7ee}td.mx-undeclared{background:#fff8e1}
td.mx-differs{background:#ffebee;outline:2px solid #c62828}
td.mx-na{color:#999;background:#f5f5f5}td.mx-no-observation{background:#fafafa}
td.mx-changed{border-left:4px solid #6a1b9a}.mx-change-mark{color:#6a1b9a;font-weight:600}
li.mx-differs{color:#c62828}
"""
