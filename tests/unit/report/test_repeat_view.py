"""``reconverge run --repeat N``: k/n per verdict per case, the differing case first and marked."""

from __future__ import annotations

import re

from harness.cli import runner
from harness.journal.record import Record
from harness.report import html, lanes

REPEATS: dict[str, list[str | None]] = {
    "a::steady[buggy]": ["CAUGHT"] * 20,
    "b::flaky[fixed]": ["CONVERGED"] * 19 + ["DIVERGED"],
    "c::late[fixed]": ["CONVERGED"] * 19 + [None],  # missing from one repeat
    "d::steady[fixed]": ["CONVERGED"] * 20,
}


def _page(repeats: dict[str, list[str | None]]) -> str:
    rec = Record(1.0, 1.0, 1, "pytest", "run", "started", {})
    return html.render(lanes.build([rec]), html.Context(title="r", repeats=repeats))


def _rows(page: str) -> list[tuple[str, str, str]]:
    return re.findall(
        r'<tr class="(rep-[a-z]+)" data-case="([^"]*)"><td>[^<]*</td><td class="rep-kn">([^<]*)<',
        page,
    )


def test_k_of_n_per_case_and_the_same_text_as_the_terminal() -> None:
    rows = {case: (cls, kn) for cls, case, kn in _rows(_page(REPEATS))}
    assert rows["a::steady[buggy]"] == ("rep-same", "CAUGHT 20/20")
    assert rows["b::flaky[fixed]"] == ("rep-differs", "CONVERGED 19/20, DIVERGED 1/20")
    assert rows["c::late[fixed]"] == ("rep-differs", "CONVERGED 19/20, absent 1/20")
    for case, outcomes in REPEATS.items():  # the runner prints the same k/n
        assert rows[case][1] == runner.k_of_n(outcomes) == html.k_of_n(outcomes)


def test_differing_cases_come_first_and_the_summary_counts_them() -> None:
    page = _page(REPEATS)
    order = [case for _, case, _ in _rows(page)]
    assert order == ["b::flaky[fixed]", "c::late[fixed]", "a::steady[buggy]", "d::steady[fixed]"]
    summary = re.search(r'<p class="rep-summary bad" id="repeats-summary">([^<]*)</p>', page)
    assert summary is not None
    assert summary.group(1) == "verdicts differ across 20 repeats for 2 of 4 case(s)"
    # each repeat's verdict is shown, so the odd one out can be found
    flaky = page.split('data-case="b::flaky[fixed]"')[1].split("</tr>")[0]
    assert 'title="repeat 20">20:<span class="badge bad">DIVERGED</span>' in flaky


def test_identical_repeats_say_so() -> None:
    page = _page({"a::x[buggy]": ["CAUGHT"] * 3})
    assert (
        '<p class="rep-summary" id="repeats-summary">identical verdicts 3/3 for 1 case(s)' in page
    )
    assert 'class="rep-differs"' not in page


def test_no_repeats_no_section() -> None:
    assert 'id="repeats"' not in _page({})
