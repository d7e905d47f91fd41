"""The pytest plugin: verdict table, failure timeline + replay line, needs-marker policy."""

from __future__ import annotations

import pytest

VERDICT_CASE = """
def test_case(verdict):
    verdict.record(suite="demo", case="c1", variant="buggy", fault="drop",
                   outcome="CAUGHT", symptom="stuck at PAUSING")
"""

FAILING_CASE = """
from harness import journal

def test_fails(reconverge_run):
    journal.emit("demo", "fault_fired", point="x")
    assert False, "diverged"
"""

NEEDS_CASE = """
import pytest

@pytest.mark.needs("toxiproxy")
def test_needs():
    pass
"""


@pytest.fixture
def isolated(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("CI", raising=False)
    return pytester


def test_verdict_table_is_printed(isolated):
    isolated.makepyfile(VERDICT_CASE)
    result = isolated.runpytest("-p", "no:cacheprovider", "--reconverge-seed=7")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*reconverge verdicts*", "*demo*c1*buggy*drop*CAUGHT*stuck at PAUSING*", "*seed 7*"]
    )


def test_failure_prints_timeline_and_replay_command(isolated, tmp_path):
    isolated.makepyfile(FAILING_CASE)
    art = tmp_path / "art"
    result = isolated.runpytest(
        "-p", "no:cacheprovider", "--reconverge-seed=42", f"--reconverge-artifacts={art}"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*timeline of test_failure_prints_timeline_and_replay_command.py::test_fails*",
            "*fault_fired*point=x*",
            "*replay: cd * && *reconverge repro *::test_fails@42*",
        ]
    )
    bundles = list((art / "failures").iterdir())
    assert len(bundles) == 1
    assert "fault_fired" in (bundles[0] / "timeline.txt").read_text()
    assert (bundles[0] / "repro.txt").read_text().endswith("::test_fails@42\n")


def test_missing_component_skips_locally_and_fails_strict(isolated, monkeypatch):
    monkeypatch.setenv("RECONVERGE_TOXIPROXY_BIN", "/nonexistent/toxiproxy-server")
    isolated.makepyfile(NEEDS_CASE)
    result = isolated.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs toxiproxy*./ci/bootstrap*"])
    result = isolated.runpytest("-p", "no:cacheprovider", "--reconverge-strict")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs toxiproxy: toxiproxy is not installed*"])


def test_case_seed_is_stable_and_order_independent():
    from harness.pytest_plugin import case_seed

    assert case_seed(1, "a::b") == case_seed(1, "a::b")
    assert case_seed(1, "a::b") != case_seed(2, "a::b")
    assert case_seed(1, "a::b") != case_seed(1, "a::c")
