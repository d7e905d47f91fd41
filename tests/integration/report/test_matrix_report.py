"""A version-matrix session's report: the release x case view, in a real browser.

The session is real pytest with the real matrix plugin (``--reconverge-containerd``, the
``containerd_matrix`` marker, ``containerd_release``); only the case itself is a stand-in
that records the verdict a release calls for instead of driving containerd, so the test
needs the releases *present* (the system 1.6.20, cached v2.3.7 and v2.4.2: nothing is
built) but runs none of them. What it checks: the terminal table and the page agree cell by
cell, the behaviour change is marked, ``reconverge report`` of the artifacts draws the same
view from ``matrix.json``, and chromium shows it with no console error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from harness.matrix import table

RELEASES = "1.6.20,v2.3.7,v2.4.2"

SUITE = textwrap.dedent(
    """
    import pytest

    from harness import journal
    from harness.matrix.upstream import Upstream

    pytestmark = pytest.mark.suite
    UPSTREAM = Upstream(reference="demo #1 (fixed in v2.4.0)", leaks=("1.6.20",), clean=("v2.4.2",))


    @pytest.mark.containerd_matrix(UPSTREAM)
    def test_probe(containerd_release, reconverge_run, verdict):
        leaks = containerd_release.label != "v2.4.2"
        journal.emit("check", "leak", ok=not leaks, symptom=f"{containerd_release.label}")
        verdict.record(
            suite="demo", case="probe", variant=containerd_release.variant, fault="none",
            outcome="CAUGHT" if leaks else "CONVERGED", symptom="shim leaked" if leaks else "",
        )
    """
)


def _env(run_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["RECONVERGE_RUN_ROOT"] = str(run_root)
    env.pop("CI", None)
    return env


@pytest.fixture(scope="module")
def run_root() -> Iterator[Path]:
    """A short run root for the child sessions (shim sockets), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="rcvm", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, run_root: Path) -> dict[str, Any]:
    from harness.errors import ReconvergeError
    from harness.matrix import versions

    try:
        labels = versions.parse_list(RELEASES)
        for label in labels:
            versions.build_version(label)
        missing = versions.missing(labels)
    except ReconvergeError as exc:
        pytest.skip(f"releases not usable here: {exc.one_line()}")
    if missing:  # never start a Go build from a test
        pytest.skip(f"containerd {', '.join(missing)} not built (reconverge build containerd@…)")
    root = tmp_path_factory.mktemp("matrix")
    (root / "test_matrix_demo.py").write_text(SUITE)
    art = root / "art"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_matrix_demo.py",
            "-p",
            "no:cacheprovider",
            f"--reconverge-containerd={RELEASES}",
            f"--reconverge-artifacts={art}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(run_root),
        check=False,
    )
    return {"root": root, "art": art, "out": out, "text": out.stdout + out.stderr}


def _page_cells(page: str) -> dict[tuple[str, str], str]:
    return {
        (unescape(c), v): unescape(t)
        for c, v, t in re.findall(
            r'data-case="([^"]*)" data-version="([^"]*)" data-text="([^"]*)"', page
        )
    }


def test_the_session_page_shows_the_terminal_table(session: dict[str, Any]) -> None:
    text = session["text"]
    assert session["out"].returncode == 0, text[-3000:]
    doc = json.loads((session["art"] / "matrix.json").read_text())
    cells = [table.Cell(**{k: c[k] for k in table.Cell.__dataclass_fields__}) for c in doc["cells"]]
    assert table.summary(cells, doc["versions"]) in text  # the terminal's own summary
    page = (session["art"] / "report.html").read_text()
    want = {(c.case, c.version): c.text() for c in cells}
    assert _page_cells(page) == want
    assert want == {
        ("test_matrix_demo.py::test_probe", "1.6.20"): "CAUGHT leaks (as declared)",
        ("test_matrix_demo.py::test_probe", "v2.3.7"): "CAUGHT leaks (undeclared)",
        ("test_matrix_demo.py::test_probe", "v2.4.2"): "CONVERGED does not leak (as declared)",
    }
    (change,) = table.changes(cells)
    assert change.text() in text
    assert (
        unescape(page.split('id="matrix-changes"')[1].split("</ul>")[0]).count(change.text()) == 1
    )


def test_reconverge_report_of_the_artifacts_draws_it_from_matrix_json(
    session: dict[str, Any], tmp_path: Path, run_root: Path
) -> None:
    assert session["out"].returncode == 0, session["text"][-3000:]
    out = tmp_path / "again.html"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(session["art"]), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(run_root),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first = _page_cells((session["art"] / "report.html").read_text())
    assert _page_cells(out.read_text()) == first and len(first) == 3


def test_the_matrix_view_renders_in_chromium(session: dict[str, Any], open_page: Any) -> None:
    assert session["out"].returncode == 0, session["text"][-3000:]
    shown = open_page(session["art"] / "report.html")
    page = shown.page
    matrix = page.locator("#matrix")
    assert matrix.is_visible()
    heads = page.locator("#matrix th.mx-version").all_inner_texts()
    assert heads == RELEASES.split(",")
    changed = page.locator("#matrix td.mx-changed")
    assert changed.count() == 1 and changed.get_attribute("data-version") == "v2.4.2"
    assert "changed since v2.3.7" in changed.inner_text()
    assert page.locator("#matrix td.mx-cell").count() == 3
    assert page.locator("#lanes-svg").count() == 1  # the rest of the page is still there
    assert shown.errors == [], shown.errors
