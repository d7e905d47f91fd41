"""``reconverge report <saved.json>``: a saved schedule's page, shrunk next to original."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.errors import ReconvergeError
from harness.explore import regress
from harness.explore import schedule as S
from harness.report import commands

REGRESSIONS = Path(__file__).parents[3] / "suites" / "regressions"


def test_report_of_a_saved_schedule_shows_both_tables_with_k_of_n(tmp_path: Path, capsys):
    shrunk = S.Schedule((S.Create("sb0"), S.Toxic("reset_peer"), S.Delete("sb0")))
    saved = S.Saved(
        shrunk,
        "DIVERGED",
        "convergence: sb0: state",
        {"seed": 3, "confirm": "failed 2 of 2 run(s) (confirm: 2 of at most 3)"},
        original=S.Schedule((*shrunk.steps, S.Restart())),
        original_confirm="failed 3 of 3 run(s) (confirm: 2 of at most 3)",
    )
    path = regress.save(saved, tmp_path, "found")
    assert commands.report_cmd(str(path)) == 0
    out = tmp_path / "found.report.html"
    assert f"report: {out}" in capsys.readouterr().out
    page = out.read_text()
    shrunk_html = page[page.index('class="steps shrunk"') : page.index('class="steps original"')]
    original_html = page[page.index('class="steps original"') :]
    assert re.findall(r"<td>(T\d+)</td>", shrunk_html) == ["T1", "T2", "T3"]
    assert re.findall(r"<td>(T\d+)</td>", original_html) == ["T1", "T2", "T3", "T4"]
    assert "reconciler kill -9 + restart" in original_html
    assert "reconciler kill -9 + restart" not in shrunk_html
    assert "failed 2 of 2 run(s)" in page and "failed 3 of 3 run(s)" in page
    assert f"reconverge repro {path}" in page


def test_report_of_a_regression_file_without_original_says_so(tmp_path: Path):
    """The files in suites/regressions predate the ``original`` field; they still render."""
    src = sorted(REGRESSIONS.glob("*.json"))[0]
    path = Path(shutil.copy(src, tmp_path / src.name))
    assert commands.report_cmd(str(path), output=str(tmp_path / "r.html")) == 0
    page = (tmp_path / "r.html").read_text()
    assert 'class="steps shrunk"' in page and 'class="steps original"' not in page
    assert "not in this file" in page


def test_report_of_a_json_that_is_not_a_schedule_is_one_clear_error(tmp_path: Path):
    (tmp_path / "x.json").write_text('{"steps": []}')
    with pytest.raises(ReconvergeError, match="no 'expected' outcome"):
        commands.report_cmd(str(tmp_path / "x.json"))
