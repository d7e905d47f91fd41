"""Every option of every subcommand says what it does; exit codes and pass-through documented.

Why a walk over the parser rather than a list of expected options: a new option added
without help text fails here without anyone remembering to extend a list.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import EXIT_CODES, build_parser, split_passthrough
from harness.cli.runner import exit_code

BIN = Path(sys.executable).parent / "reconverge"


def _parsers(
    parser: argparse.ArgumentParser, name: str = "reconverge"
) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and every subcommand parser below it, with their command names."""
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                assert helps.get(sub_name), f"subcommand {sub_name!r} has no help"
                out += _parsers(sub, f"{name} {sub_name}")
    return out


def test_every_action_has_help_text():
    missing = [
        f"{cmd}: {'/'.join(a.option_strings) or a.dest}"
        for cmd, parser in _parsers(build_parser())
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()
    ]
    assert not missing, "options without help text: " + ", ".join(missing)


def test_the_walk_sees_every_subcommand():
    names = {cmd for cmd, _ in _parsers(build_parser())}
    expected = {"doctor", "janitor", "build", "timeline", "report", "run", "repro", "up"}
    assert {f"reconverge {n}" for n in expected} <= names


def test_backend_like_options_have_choices():
    for cmd, parser in _parsers(build_parser()):
        for a in parser._actions:
            if any(s in ("--backend", "--kube") for s in a.option_strings):
                assert a.choices, f"{cmd} {a.option_strings} has no choices"


def test_epilog_names_every_exit_code_in_every_help():
    for code in ("0 ", "1 ", "2 ", "130"):
        assert f"\n  {code}" in EXIT_CODES
    for cmd, parser in _parsers(build_parser()):
        assert "exit codes:" in parser.format_help(), cmd


def test_run_and_repro_help_document_the_pytest_pass_through():
    helps = dict(_parsers(build_parser()))
    for cmd in ("reconverge run", "reconverge repro"):
        text = helps[cmd].format_help()
        assert "[-- PYTEST_ARGS ...]" in text and "PYTEST_ADDOPTS" in text, cmd


def test_split_passthrough_only_for_run_and_repro():
    assert split_passthrough(["run", "suites", "--", "-k", "x"]) == (["run", "suites"], ["-k", "x"])
    assert split_passthrough(["repro", "a@1", "--", "-s"]) == (["repro", "a@1"], ["-s"])
    assert split_passthrough(["timeline", "--", "-odd"]) == (["timeline", "--", "-odd"], [])
    assert split_passthrough(["run", "suites"]) == (["run", "suites"], [])


def test_pytest_exit_codes_map_onto_ours():
    # 0 ok, 1 failed, 2 collection error, 3 internal error, 4 usage error, 5 nothing collected
    assert [exit_code(c) for c in range(6)] == [0, 1, 2, 1, 2, 2]
    assert exit_code(-9) == 1


TWO_TESTS = """
def test_one():
    pass

def test_two():
    pass
"""


@pytest.fixture
def two_tests(tmp_path: Path) -> Path:
    path = tmp_path / "test_two.py"
    path.write_text(TWO_TESTS)
    return path


def _reconverge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def test_options_after_double_dash_reach_pytest(two_tests: Path):
    out = _reconverge("run", str(two_tests), "--", "-k", "one", "-p", "no:cacheprovider")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 deselected" in out.stdout, out.stdout


def test_pytest_addopts_reaches_pytest_and_nothing_selected_is_exit_2(two_tests: Path):
    out = _reconverge("run", str(two_tests), env={"PYTEST_ADDOPTS": "-k nomatch"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "2 deselected" in out.stdout, out.stdout
