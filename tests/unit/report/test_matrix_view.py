"""The report's release x case view says what the matrix's terminal table says.

Cells come from :mod:`harness.matrix.table` (the model the terminal summary and
``matrix.json`` use); the page is checked cell by cell against ``table.render``'s text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.journal.record import Record
from harness.matrix import table
from harness.report import html, lanes, matrix_view

REF = "containerd #8981; fixed in v2.4.0"
SHUT = "test_seed_c_shutdown.py::test_shutdown_error_after_delete[buggy]"
DEL = "test_seed_c_shutdown.py::test_delete_outlives_exit_deadline[buggy]"
VERSIONS = ["1.6.20", "v2.3.7", "v2.4.2", "v2.1.5"]  # asked order, not semver

CELLS = [
    table.Cell(SHUT, "1.6.20", "CAUGHT", "leaks", "leaks", REF, f"{SHUT[:-1]}-1.6.20]"),
    table.Cell(SHUT, "v2.1.5", "CAUGHT", "leaks", "leaks", REF, f"{SHUT[:-1]}-v2.1.5]"),
    table.Cell(SHUT, "v2.3.7", "CAUGHT", "leaks", None, REF, f"{SHUT[:-1]}-v2.3.7]"),
    table.Cell(SHUT, "v2.4.2", "MISSED", "does not leak", "does not leak", REF, "x"),
    table.Cell(DEL, "1.6.20", "CAUGHT", "leaks", "leaks", REF, "y"),
    # declared clean, observed leaking: the one cell that fails a matrix run
    table.Cell(DEL, "v2.4.2", "CAUGHT", "leaks", "does not leak", REF, "z"),
    table.Cell(DEL, "v2.3.7", "INCONCLUSIVE", None, "leaks", REF, "w"),
]


def _page(view: matrix_view.MatrixView | None) -> str:
    rec = Record(1.0, 1.0, 1, "pytest", "run", "started", {})
    return html.render(lanes.build([rec]), html.Context(title="matrix", matrix=view))


def _terminal_cells() -> dict[tuple[str, str], str]:
    """(case, release) -> cell text, parsed back from the terminal table."""
    lines = table.render(CELLS, VERSIONS).splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    out = {}
    for line in lines[2:]:
        cols = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        for version, text in zip(VERSIONS, cols[1:], strict=True):
            out[(cols[0], version)] = text
    return out


def test_every_cell_on_the_page_reads_as_in_the_terminal_table() -> None:
    view = matrix_view.from_cells(CELLS, VERSIONS)
    page = _page(view)
    shown = {
        (html_unescape(c), v): html_unescape(t)
        for c, v, t in re.findall(
            r'<td class="mx-cell[^"]*" data-case="([^"]*)" data-version="([^"]*)" '
            r'data-text="([^"]*)"',
            page,
        )
    }
    terminal = _terminal_cells()
    assert {k: v for k, v in terminal.items() if v != "n/a"} == shown
    assert page.count('class="mx-cell mx-na"') == list(terminal.values()).count("n/a") == 1
    # columns in the asked order, rows the cases
    heads = re.findall(r'<th class="mx-version">([^<]*)</th>', page)
    assert heads == VERSIONS
    assert page.index(html.html.escape(DEL)) < page.index(html.html.escape(SHUT))


def test_a_behaviour_change_is_marked_on_the_newer_release_and_listed() -> None:
    view = matrix_view.from_cells(CELLS, VERSIONS)
    assert view is not None
    changes = table.changes(CELLS)
    assert [(c.case, c.older, c.newer) for c in changes] == [(SHUT, "v2.3.7", "v2.4.2")]
    page = _page(view)
    marked = re.findall(r'<td class="([^"]*mx-changed[^"]*)" data-case="([^"]*)" '
                        r'data-version="([^"]*)"', page)  # fmt: skip
    assert [(html_unescape(c), v) for _, c, v in marked] == [(SHUT, "v2.4.2")]
    assert "changed since v2.3.7: leaks &rarr; does not leak" in page
    assert html.html.escape(changes[0].text()) in page.split('id="matrix-changes"')[1]


def test_a_cell_that_differs_from_its_declaration_is_flagged() -> None:
    page = _page(matrix_view.from_cells(CELLS, VERSIONS))
    flagged = re.findall(r'<td class="mx-cell mx-differs" data-case="([^"]*)" '
                         r'data-version="([^"]*)"', page)  # fmt: skip
    assert [(html_unescape(c), v) for c, v in flagged] == [(DEL, "v2.4.2")]
    differs = page.split('id="matrix-differs"')[1]
    assert "observed leaks, declared does not leak" in differs
    assert "(undeclared)" in page and "(as declared)" in page


def test_matrix_json_round_trips_into_the_same_view(tmp_path: Path) -> None:
    # exactly what harness.matrix.plugin writes at the end of a matrix session
    doc = {
        "versions": VERSIONS,
        "cells": [c.to_dict() for c in CELLS],
        "changes": [ch.text() for ch in table.changes(CELLS)],
    }
    (tmp_path / "matrix.json").write_text(json.dumps(doc))
    view = matrix_view.load(tmp_path)
    assert view is not None
    assert view.cells == tuple(CELLS) and list(view.versions) == VERSIONS
    assert view.text() == table.summary(CELLS, VERSIONS)


def test_no_matrix_no_section(tmp_path: Path) -> None:
    assert matrix_view.load(tmp_path) is None
    (tmp_path / "matrix.json").write_text("[1, 2]")
    assert matrix_view.load(tmp_path) is None
    (tmp_path / "matrix.json").write_text("{not json")
    assert matrix_view.load(tmp_path) is None
    assert matrix_view.from_cells([]) is None
    assert 'id="matrix"' not in _page(None)


def test_without_asked_versions_columns_follow_semver() -> None:
    view = matrix_view.from_cells(CELLS)
    assert view is not None
    assert list(view.versions) == ["1.6.20", "v2.1.5", "v2.3.7", "v2.4.2"]


def test_cell_text_is_escaped() -> None:
    cell = table.Cell("<b>case</b>", "v2.4.2", "CAUGHT", "leaks", None, "<ref>", "n")
    page = _page(matrix_view.from_cells([cell]))
    section = page.split('id="matrix"')[1].split("</section>")[0]
    assert "<b>case</b>" not in section and "&lt;b&gt;case&lt;/b&gt;" in section
    assert "<ref>" not in section


def html_unescape(text: str) -> str:
    return html.html.unescape(text)
