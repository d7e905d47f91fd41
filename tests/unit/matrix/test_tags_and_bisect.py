"""Tag parsing and ordering, ranges, upstream declarations, the table and the bisect search.

All pure: ``observe`` is a dict lookup, so the search is checked step by step without a
build or a containerd.
"""

from __future__ import annotations

import pytest

from harness.errors import ReconvergeError
from harness.matrix import bisect, table, tags, upstream
from harness.matrix.cli import behaviour_of
from harness.matrix.upstream import CLEAN, LEAKS, Upstream
from harness.matrix.versions import parse_list

SERVED = [
    "v2.0.13",
    "v2.0.14",
    "v2.1.3",
    "v2.1.4",
    "v2.1.5",
    "v2.1.8",
    "v2.1.9",
    "v2.2.1",
    "v2.2.2",
    "v2.2.3",
    "v2.2.8",
    "v2.2.9",
    "v2.3.4",
    "v2.3.5",
    "v2.3.6",
    "v2.3.7",
    "v2.4.0",
    "v2.4.1",
    "v2.4.2",
]


def test_semver_order_not_string_order():
    assert tags.ordered(["v2.10.0", "v2.9.1", "v2.2.0", "v2.2.0-rc.1", "v2.2.0-beta.2"]) == [
        "v2.2.0",
        "v2.9.1",
        "v2.10.0",
    ]
    with_pre = tags.ordered(["v2.2.0", "v2.2.0-rc.10", "v2.2.0-rc.2", "v2.2.0-beta.2"], pre=True)
    assert with_pre == ["v2.2.0-beta.2", "v2.2.0-rc.2", "v2.2.0-rc.10", "v2.2.0"]


def test_ordered_drops_duplicates_and_garbage():
    assert tags.ordered(["v2.1.5", "2.1.5", "main", "v2.1.4+incompatible", "v2.1.4"]) == [
        "v2.1.4+incompatible",
        "v2.1.5",
    ]


def test_parse_refuses_a_non_version_with_one_line():
    with pytest.raises(ReconvergeError, match="is not a version"):
        tags.parse("v2.1")


def test_between_is_inclusive_and_direction_free():
    assert tags.between(SERVED, "v2.1.5", "v2.1.4") == ["v2.1.4", "v2.1.5"]
    assert tags.between(SERVED, "v2.1.5", "v2.3.7") == tags.between(SERVED, "v2.3.7", "v2.1.5")
    span = tags.between(SERVED, "v2.1.5", "v2.3.7")
    assert span[0] == "v2.1.5" and span[-1] == "v2.3.7" and len(span) == 12


def test_between_releases_only_unless_pre():
    served = ["v2.1.5", "v2.2.0-rc.1", "v2.2.0", "v2.2.1"]
    assert tags.between(served, "v2.1.5", "v2.2.1") == ["v2.1.5", "v2.2.0", "v2.2.1"]
    assert tags.between(served, "v2.1.5", "v2.2.1", pre=True) == served
    # an end that is itself a pre-release stays in
    assert tags.between(served, "v2.2.0-rc.1", "v2.2.1") == ["v2.2.0-rc.1", "v2.2.0", "v2.2.1"]


def test_between_refuses_an_unserved_end():
    with pytest.raises(ReconvergeError, match=r"v2\.1\.6 is not a tag the module proxy serves"):
        tags.between(SERVED, "v2.1.6", "v2.1.4")


def test_compare_url():
    assert tags.compare_url("v2.1.4", "v2.1.5") == (
        "https://github.com/containerd/containerd/compare/v2.1.4...v2.1.5"
    )


def test_parse_list_keeps_order_and_drops_duplicates():
    assert parse_list(" 1.6.20, v2.1.4,v2.1.4 ,v2.4.2") == ["1.6.20", "v2.1.4", "v2.4.2"]
    with pytest.raises(ReconvergeError):
        parse_list(" , ")


# -- upstream declarations ------------------------------------------------------------------

UP = Upstream("ref", leaks=("v2.1.4",), clean=("v2.1.5",), since="v2.0.0")


def test_expectation_variant_and_ids():
    assert UP.expect("v2.1.4") == LEAKS and UP.expect("2.1.5") == CLEAN
    assert UP.expect("v2.4.2") is None
    assert [UP.param_id(v) for v in ("v2.1.4", "v2.1.5", "v2.4.2")] == [
        "buggy-v2.1.4",
        "fixed-v2.1.5",
        "probe-v2.4.2",
    ]
    assert UP.variant("v2.4.2") == "buggy"  # the symptom predicate tells leak from no leak
    assert not UP.applies("1.6.20") and UP.applies("v2.0.0")


def test_a_release_cannot_be_declared_both_ways():
    with pytest.raises(ValueError, match="both"):
        Upstream("r", leaks=("1.6.20",), clean=("v1.6.20",))


@pytest.mark.parametrize(
    ("row", "probes", "want"),
    [
        ({"variant": "buggy", "outcome": "CAUGHT"}, ("buggy",), LEAKS),
        (
            {"variant": "buggy", "outcome": "MISSED", "symptom": "every checker passed"},
            ("buggy",),
            CLEAN,
        ),
        (
            {"variant": "buggy", "outcome": "MISSED", "symptom": "failed differently: x"},
            ("buggy",),
            None,
        ),
        ({"variant": "fixed", "outcome": "CONVERGED"}, ("buggy", "fixed"), CLEAN),
        ({"variant": "fixed", "outcome": "CONVERGED"}, ("buggy",), None),  # our reconciler
        ({"variant": "buggy", "outcome": "INCONCLUSIVE"}, ("buggy",), None),
    ],
)
def test_observed_behaviour_from_a_verdict_row(row, probes, want):
    assert upstream.observed(row, probes) == want


def test_judgement_relations():
    assert upstream.Judgement(LEAKS, LEAKS).relation == "as declared"
    assert upstream.Judgement(CLEAN, None).acceptable
    differs = upstream.Judgement(CLEAN, LEAKS)
    assert differs.relation == "differs" and not differs.acceptable
    assert "DIFFERS: declared leaks" in differs.text()


# -- table ------------------------------------------------------------------------------------


def _cells() -> list[table.Cell]:
    return [
        table.Cell("b::t", "v2.1.4", "CAUGHT", LEAKS, LEAKS, "PR #12400"),
        table.Cell("b::t", "v2.1.5", "CONVERGED", CLEAN, CLEAN, "PR #12400"),
        table.Cell("b::t", "v2.4.2", "MISSED", CLEAN, None, "PR #12400"),
        table.Cell("c::t[fixed]", "v2.1.5", "CONVERGED"),
    ]


def test_table_rows_cases_columns_versions_in_the_asked_order():
    text = table.render(_cells(), ["v2.4.2", "v2.1.4", "v2.1.5"])
    head, _rule, *rows = text.splitlines()
    assert head.split() == ["case", "v2.4.2", "v2.1.4", "v2.1.5"]
    assert rows[0].startswith("b::t") and "CAUGHT leaks (as declared)" in rows[0]
    assert "MISSED does not leak (undeclared)" in rows[0]
    assert rows[1].split()[:3] == ["c::t[fixed]", "n/a", "n/a"]


def test_behaviour_changes_between_neighbouring_releases_only():
    changes = table.changes(_cells())
    assert [(c.older, c.newer, c.before, c.after) for c in changes] == [
        ("v2.1.4", "v2.1.5", LEAKS, CLEAN)
    ]
    assert "behaviour change: b::t: v2.1.4 leaks -> v2.1.5 does not leak" in changes[0].text()


def test_summary_names_a_cell_that_differs_from_its_declaration():
    cells = [table.Cell("b::t", "v2.1.5", "CAUGHT", LEAKS, CLEAN, "PR #12400")]
    assert "DIFFERS from the declaration: b::t on v2.1.5" in table.summary(cells)


def test_behaviour_of_one_run():
    cell = {"case": "a", "behaviour": LEAKS}
    assert behaviour_of({"cells": [cell, {"case": "a[fixed]", "behaviour": None}]}) == LEAKS
    assert behaviour_of({"cells": [{"case": "a", "behaviour": None}]}) is None
    assert behaviour_of({}) is None
    mixed = behaviour_of({"cells": [cell, {"case": "b", "behaviour": CLEAN}]})
    assert mixed not in (LEAKS, CLEAN, None)


# -- bisect -----------------------------------------------------------------------------------


def _observer(truth: dict[str, str], k: int = 3, seen: list[str] | None = None):
    def observe(tag: str) -> list[str | None]:
        if seen is not None:
            seen.append(tag)
        return [truth[tag]] * k

    return observe


def test_adjacent_tags_need_only_the_two_ends():
    seen: list[str] = []
    order = tags.between(SERVED, "v2.1.5", "v2.1.4")
    result = bisect.search(
        order, _observer({"v2.1.4": LEAKS, "v2.1.5": CLEAN}, seen=seen), log=lambda s: None
    )
    assert (result.older, result.newer, result.before, result.after) == (
        "v2.1.4",
        "v2.1.5",
        LEAKS,
        CLEAN,
    )
    assert seen == ["v2.1.4", "v2.1.5"]


@pytest.mark.parametrize("first_clean", ["v2.1.8", "v2.2.3", "v2.3.4", "v2.3.7", "v2.4.2"])
def test_binary_search_finds_the_first_changed_tag_in_log_steps(first_clean):
    order = tags.between(SERVED, "v2.1.5", "v2.4.2")  # 14 tags
    cut = tags.parse(first_clean).key
    truth = {t: CLEAN if tags.parse(t).key >= cut else LEAKS for t in order}
    seen: list[str] = []
    lines: list[str] = []
    result = bisect.search(order, _observer(truth, seen=seen), log=lines.append)
    assert result.newer == first_clean
    assert order[order.index(first_clean) - 1] == result.older
    assert len(seen) == len(set(seen)) <= 2 + 4  # the ends, then ceil(log2(12)) middles
    assert all(line.startswith(f"step {i}: ") for i, line in enumerate(lines, 1))
    assert "k=3" in lines[0]


def test_a_split_is_inconclusive_and_stops():
    order = ["v2.1.4", "v2.1.5", "v2.1.8"]

    def observe(tag: str) -> list[str | None]:
        return {"v2.1.4": [LEAKS] * 3, "v2.1.8": [CLEAN] * 3, "v2.1.5": [LEAKS, CLEAN, LEAKS]}[tag]

    with pytest.raises(bisect.Inconclusive, match=r"INCONCLUSIVE at v2.1.5: split leaks 2-of-3"):
        bisect.search(order, observe, log=lambda s: None)


def test_no_observation_is_inconclusive():
    with pytest.raises(bisect.Inconclusive, match="observed no upstream behaviour"):
        bisect.search(["v2.1.4", "v2.1.5"], lambda t: [None, LEAKS], log=lambda s: None)


def test_a_third_behaviour_stops_the_search():
    truth = {"v2.1.4": LEAKS, "v2.1.5": "a: leaks; b: does not leak", "v2.1.8": CLEAN}
    with pytest.raises(bisect.Inconclusive, match="neither"):
        bisect.search(list(truth), _observer(truth), log=lambda s: None)


def test_ends_that_agree_are_one_clear_error():
    with pytest.raises(ReconvergeError, match="nothing to bisect"):
        bisect.search(["v2.1.4", "v2.1.5"], lambda t: [LEAKS], log=lambda s: None)
