"""``reconverge run --repeat`` compares repeats by case key; the keys come from harness.verdict."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import runner

ROW = {"suite": "seed-b", "case": "dual-delete", "variant": "buggy", "outcome": "CAUGHT"}


def test_schema_2_and_schema_1_files_give_the_same_keys(tmp_path: Path) -> None:
    two, one = tmp_path / "two.json", tmp_path / "one.json"
    two.write_text(json.dumps({"schema": 2, "verdicts": [ROW]}))
    one.write_text(json.dumps([ROW]))
    assert runner._verdict_keys(two) == runner._verdict_keys(one)
    assert runner._verdict_keys(two) == {"seed-b::dual-delete[buggy|-]": "CAUGHT"}


def test_a_torn_or_missing_file_has_no_keys(tmp_path: Path) -> None:
    torn = tmp_path / "torn.json"
    torn.write_text('{"schema": 2, "verdicts": [')
    assert runner._verdict_keys(torn) == {}
    assert runner._verdict_keys(tmp_path / "absent.json") == {}
