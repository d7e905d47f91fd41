"""Shard outputs merge into one verdicts.json, one JUnit and one report.html; the explore
options fail with one clear line before anything starts."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.errors import ReconvergeError
from harness.explore import cli, merge, regress
from harness.explore import schedule as S
from harness.verdict import Verdict


def _row(case: str, variant: str, outcome: str) -> Verdict:
    return Verdict("explore-sandbox", case, variant, "explored", outcome, "s", 1.5)


def test_merge_concatenates_shards_and_builds_one_junit(tmp_path: Path):
    dirs = []
    for i, (variant, outcome) in enumerate([("fixed", "CONVERGED"), ("buggy", "MISSED")]):
        d = tmp_path / f"shard{i}"
        merge.write([_row(f"seed 1 shard {i}/2", variant, outcome)], d)
        dirs.append(d)
    rows = merge.merge(dirs, tmp_path / "out")
    assert [r.case for r in rows] == ["seed 1 shard 0/2", "seed 1 shard 1/2"]
    data = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    assert [Verdict.from_dict(r) for r in data] == rows
    suite = ET.fromstring((tmp_path / "out" / "junit.xml").read_text())
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c for c in suite if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["seed 1 shard 1/2 [buggy]"]


SHRUNK = S.Schedule(
    (S.Create("sb0"), S.ShimFault("sb0", "Shutdown", "before", "error", "boom"), S.Delete("sb0")),
    bugs=("runtime.delete_not_retriable",),
)
ORIGINAL = S.Schedule(
    (S.Create("sb0"), S.Pause("sb0", 0.4), *SHRUNK.steps[1:], S.Create("sb1"), S.Heal()),
    bugs=SHRUNK.bugs,
)


def test_merge_writes_one_report_with_shard_origins_schedules_and_counts(tmp_path: Path):
    """The page holds the facts: which shard gave which row, each saved failure shrunk next
    to original with both k-of-n figures, the counts — and nothing it would fetch."""
    dirs = [tmp_path / "shard-0", tmp_path / "shard-1"]
    merge.write([_row("seed 1 shard 0/2", "buggy", "MISSED")], dirs[0])
    merge.write([_row("seed 1 shard 1/2", "buggy", "CAUGHT")], dirs[1])
    saved = S.Saved(
        SHRUNK,
        "DIVERGED",
        "convergence: sb0 leaked <shim>",
        {"seed": 1, "confirm": "failed 2 of 2 run(s) (confirm: 2 of at most 3)"},
        original=ORIGINAL,
        original_confirm="failed 3 of 3 run(s) (confirm: 2 of at most 3)",
    )
    path = regress.save(saved, dirs[1] / "failures", "delete-not-retriable-1")
    merge.merge(dirs, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    merged = page[page.index('id="merged"') : page.index('id="schedules"')]
    assert re.search(r"shard-0</td><td>seed 1 shard 0/2</td><td>buggy</td><td>.*MISSED", merged)
    assert re.search(r"shard-1</td><td>seed 1 shard 1/2</td><td>buggy</td><td>.*CAUGHT", merged)
    assert "2 row(s) from 2 shard(s); CAUGHT 1, MISSED 1; 1 saved failing schedule(s)" in merged
    one = page[page.index('id="schedule-1"') :]
    assert str(path) in one and "convergence: sb0 leaked &lt;shim&gt;" in one
    shrunk = one[one.index('class="steps shrunk"') : one.index('class="steps original"')]
    original = one[one.index('class="steps original"') :]
    assert re.findall(r"<td>(T\d+)</td>", shrunk) == ["T1", "T2", "T3"]
    assert re.findall(r"<td>(T\d+)</td>", original) == [f"T{i}" for i in range(1, 7)]
    assert "fault shim.Shutdown.before=1*error(boom) on sb0" in shrunk
    assert "pause sb0 (caller deadline 0.4s)" in original
    assert "failed 2 of 2 run(s) (confirm: 2 of at most 3)" in one
    assert "failed 3 of 3 run(s) (confirm: 2 of at most 3)" in one
    assert 'id="swimlanes"' not in page  # a merge has no journal to draw


def test_merge_of_a_dir_without_verdicts_is_one_clear_error(tmp_path: Path):
    with pytest.raises(ReconvergeError, match=r"no verdicts\.json in"):
        merge.read(tmp_path)
    (tmp_path / "verdicts.json").write_text("{")
    with pytest.raises(ReconvergeError, match="not JSON"):
        merge.read(tmp_path)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers())
    return p.parse_args(["explore", *argv])


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--shard", "4/4"], "need 0 <= i < N"),
        (["--shard", "x"], "expected i/N"),
        (["--bug", "cri.no_such_switch"], "unknown sandbox bug switch cri.no_such_switch"),
        (["--minutes", "0"], "must be positive"),
    ],
)
def test_bad_options_fail_before_anything_starts(argv, words):
    args = _args("--seed", "1", *argv)
    with pytest.raises(ReconvergeError, match=words):
        cli._options(args, 1)


def test_options_carry_every_flag():
    o = cli._options(
        _args("--bug", "runtime.delete_not_retriable", "--shard", "2/4", "--faults", "Shutdown,"),
        9,
    )
    assert o.bugs == ("runtime.delete_not_retriable",) and o.shard == (2, 4)
    assert o.faults == ("Shutdown",) and o.seed == 9 and o.toxics


def test_a_saved_failure_keeps_its_run_journal_and_the_merge_draws_it(tmp_path: Path, capsys):
    """``save_failure`` writes ``<name>.journal.jsonl`` beside ``<name>.json`` (the run of
    the shrunk schedule that failed), the merge's page draws it under the schedule tables;
    a failure saved without one (an older file) draws as before."""
    from harness.explore.engine import Evaluation, Options
    from harness.explore.engine import Finding as Found
    from harness.explore.result import Result
    from harness.journal.record import Record
    from harness.verdict import Finding

    recs = [
        Record(5.0, 1.7e9, 1, "explore", "explore", "schedule", {"namespace": "ex-1"}),
        Record(5.2, 1.7e9, 1, "explore", "check", "leak", {"ok": False, "symptom": "sb0"}),
    ]
    failing = Result("DIVERGED", "leak: sb0", [Finding("leak", ok=False, symptom="sb0")])
    failing.journal = recs
    opts = Options(seed=7, bugs=SHRUNK.bugs)
    minimal = Evaluation(SHRUNK, "fail", [failing, failing])
    found = Found(first=Evaluation(ORIGINAL, "fail", [failing]), minimal=minimal)
    shard = tmp_path / "shard-0"
    path = cli.save_failure(opts, found, shard / "failures", tmp_path / "regressions")
    kept = shard / "failures" / (path.stem + ".journal.jsonl")
    assert f"journal of the failing run: {kept} (2 records)" in capsys.readouterr().out
    assert [Record.from_json(x) for x in kept.read_text().splitlines()] == recs
    assert not list((tmp_path / "regressions").glob("*.jsonl"))  # schedules only there
    older = S.Saved(SHRUNK, "DIVERGED", "older", {"seed": 1})
    regress.save(older, shard / "failures", "older")
    merge.write([_row("seed 7 shard 0/1", "buggy", "CAUGHT")], shard)
    merge.merge([shard], tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count('class="saved-schedule"') == 2
    assert page.count('class="saved-journal"') == 1
    drawn = page[page.index('class="saved-journal"') :]
    assert f"2 journal record(s) ({kept.name})" in drawn and "first violation T2" in drawn
