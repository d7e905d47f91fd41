"""Shard outputs merge into one verdicts.json and one JUnit; the explore options fail
with one clear line before anything starts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.errors import ReconvergeError
from harness.explore import cli, merge
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
