"""``reconverge report <saved.json>``: a saved schedule's page, shrunk next to original."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.errors import ReconvergeError
from harness.explore import failure_journal, regress
from harness.explore import schedule as S
from harness.journal.record import Record
from harness.report import commands, schedule_view

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
    """Files without the ``original`` field (written before it existed, or by hand) still
    render: a regression file with that field taken out stands in for one."""
    src = sorted(REGRESSIONS.glob("*.json"))[0]
    data = json.loads(src.read_text())
    data.pop("original", None)
    path = tmp_path / src.name
    path.write_text(json.dumps(data))
    assert commands.report_cmd(str(path), output=str(tmp_path / "r.html")) == 0
    page = (tmp_path / "r.html").read_text()
    assert 'class="steps shrunk"' in page and 'class="steps original"' not in page
    assert "not in this file" in page


def test_report_of_a_json_that_is_not_a_schedule_is_one_clear_error(tmp_path: Path):
    (tmp_path / "x.json").write_text('{"steps": []}')
    with pytest.raises(ReconvergeError, match="no 'expected' outcome"):
        commands.report_cmd(str(tmp_path / "x.json"))


def _failing_run() -> list[Record]:
    """A small failing run as the sandbox world journals it: steps, a shim call under a
    failpoint, and the check that found the leak."""
    rows = [
        ("explore", "explore", "schedule", {"namespace": "ex-1-ab", "steps": 3}),
        ("explore", "reconciler", "create", {"id": "sb0", "namespace": "ex-1-ab"}),
        ("shim:sb0", "shim", "request", {"method": "Shutdown", "stream_id": 3}),
        ("shim:sb0", "failpoint", "trigger", {"name": "shim.Shutdown.before", "action": "error"}),
        ("shim:sb0", "shim", "reply", {"method": "Shutdown", "stream_id": 3, "outcome": "err"}),
        ("explore", "check", "leak", {"ok": False, "symptom": "sb0 leaked <shim>"}),
    ]
    return [
        Record(100.0 + i * 0.05, 1.7e9 + i, 4242 if p.startswith("shim") else 1, p, c, e, f)
        for i, (p, c, e, f) in enumerate(rows)
    ]


def _saved(tmp_path: Path, name: str = "found") -> Path:
    shrunk = S.Schedule((S.Create("sb0"), S.Toxic("reset_peer"), S.Delete("sb0")))
    saved = S.Saved(shrunk, "DIVERGED", "leak: sb0", {"seed": 3}, original=shrunk)
    return regress.save(saved, tmp_path, name)


def test_report_of_a_saved_schedule_with_its_journal_draws_the_failing_run(tmp_path, capsys):
    path = _saved(tmp_path)
    failure_journal.write(failure_journal.path_for(path), _failing_run())
    assert commands.report_cmd(str(path)) == 0
    assert "journal: 6 record(s) of the failing run drawn" in capsys.readouterr().out
    page = (tmp_path / "found.report.html").read_text()
    # under the schedule tables: the run's swimlanes, then its T1…Tn
    at = page.index('class="steps original"')
    run = page[page.index('class="saved-journal"') :]
    assert page.index('class="saved-journal"') > at
    assert "6 journal record(s) (found.journal.jsonl)" in run
    assert 'id="lanes-svg"' in run and 'id="zoom-in"' in run  # the page script binds these
    for lane in ("reconciler", "shim:sb0", "checks"):
        assert f'title="{lane}"' in run, lane
    assert 'class="fault-mark"' in run  # the failpoint trigger
    assert 'id="first-violation"' in run and "first violation T6: leak: sb0 leaked" in run
    table = run[run.index('class="timeline"') :]
    assert re.findall(r'<tr id="(T\d+)"', table) == [f"T{i}" for i in range(1, 7)]
    assert 'id="swimlanes"' not in page  # no second, empty page-level journal


def test_report_of_a_saved_schedule_without_its_journal_draws_as_before(tmp_path, capsys):
    path = _saved(tmp_path)
    assert commands.report_cmd(str(path)) == 0
    assert "journal: none beside the file" in capsys.readouterr().out
    page = (tmp_path / "found.report.html").read_text()
    assert 'class="steps shrunk"' in page and 'class="steps original"' in page
    assert 'class="saved-journal"' not in page and 'id="lanes-svg"' not in page
    assert 'class="timeline"' not in page


def test_several_saved_journals_on_one_page_have_distinct_ids(tmp_path):
    """A merge may hold several: the first takes the ids the script binds, the rest are
    prefixed (a duplicate id would make a row link jump into the wrong run)."""
    for name in ("a", "b"):
        path = _saved(tmp_path / "failures", name)
        failure_journal.write(failure_journal.path_for(path), _failing_run())
    view = schedule_view.from_shards([(tmp_path, [])])
    page = schedule_view.render(view)
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert 'id="lanes-svg"' in page and 'id="s2-lanes-svg"' in page
    assert 'href="#s2-T6"' in page and 'id="s2-T6"' in page


def test_a_run_judged_diverged_without_a_check_record_still_shows_its_violation(tmp_path):
    """The claims world journals a convergence failure only in its judgement: the run's
    first violation is that record (a passing judgement is none)."""
    path = _saved(tmp_path)
    recs = [
        Record(1.0, 1.7e9, 1, "explore", "explore", "step", {"index": 1, "op": "create_claim"}),
        Record(1.5, 1.7e9, 1, "explore", "explore", "judged", {"outcome": "CONVERGED"}),
        Record(2.0, 1.7e9, 1, "explore", "explore", "judged", {"outcome": "DIVERGED"}),
    ]
    failure_journal.write(failure_journal.path_for(path), recs)
    page = schedule_view.render(schedule_view.from_file(path))
    assert 'id="jump" href="#T3"' in page and "first violation T3: judged DIVERGED" in page
