"""The term grammar: what parses, its canonical and remaining forms, and where errors point."""

from __future__ import annotations

import pickle

import pytest

from failpoints import FailpointSyntaxError, Term, Terms, parse
from failpoints.grammar import check_name, format_assignments, parse_assignments

CANONICAL = [
    # (input, canonical form)
    ("off", "off"),
    ("1*error(please retry)", "1*error(please retry)"),  # containerd Shutdown example
    ("1*error(retry)", "1*error(retry)"),
    ("1*error(you-shall-not-pass!)", "1*error(you-shall-not-pass!)"),
    ("1*off->1*error(x)", "1*off->1*error(x)"),
    ("1*delay(100)", "1*delay(100)"),
    ("1*panic(boom)", "1*panic(boom)"),
    ("50%3*delay(10)->error(boom)", "50%3*delay(10)->error(boom)"),
    ("12.5%drop", "12.5%drop"),
    ("50.0%off", "50%off"),
    ("050.500%off", "50.5%off"),
    ("100%hang", "100%hang"),
    ("0%close", "0%close"),
    ("0.001%close", "0.001%close"),
    ("003*off", "3*off"),
    ("0*off", "0*off"),
    ("sleep(10)", "delay(10)"),  # gofail alias, printed as delay
    ("delay(007)", "delay(7)"),
    ("duplicate", "duplicate"),
    ("duplicate(3)", "duplicate(3)"),
    ("duplicate(03)", "duplicate(3)"),
    ("return", "return"),
    ('return("x")', 'return("x")'),
    ("panic", "panic"),
    ("error", "error"),
    ("error(a(b)->off", "error(a(b)->off"),  # the argument runs to the first ')'
    ("error(a->b)", "error(a->b)"),
    ("error(é ☃ 50%3*)", "error(é ☃ 50%3*)"),
    ("2*close->3*drop->hang", "2*close->3*drop->hang"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_canonical_form(text, canonical):
    terms = parse(text)
    assert str(terms) == canonical
    assert parse(canonical) == terms


def test_parse_exposes_each_term():
    terms = parse("50%3*delay(10)->error(boom)")
    assert len(terms) == 2
    assert terms[0] == Term("delay", "10", count=3, probability=50.0)
    assert terms[1] == Term("error", "boom")
    assert [t.kind for t in terms] == ["delay", "error"]


def test_terms_built_in_code_print_like_parsed_ones():
    terms = Terms((Term("sleep", "5", count=2), Term("duplicate", probability=12.5)))
    assert str(terms) == "2*delay(5)->12.5%duplicate"
    assert parse(str(terms)) == terms


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"kind": "bogus"}, "unknown action"),
        ({"kind": "off", "arg": "x"}, "takes no argument"),
        ({"kind": "delay"}, "needs an argument"),
        ({"kind": "delay", "arg": "1.5"}, "whole milliseconds"),
        ({"kind": "duplicate", "arg": "0"}, "at least 1"),
        ({"kind": "error", "arg": "a)b"}, r"'\)'"),
        ({"kind": "error", "arg": "a\nb"}, "unprintable"),
        ({"kind": "off", "count": -1}, "count"),
        ({"kind": "off", "probability": 100.5}, "probability"),
        ({"kind": "off", "probability": float("nan")}, "probability"),
    ],
)
def test_invalid_term_values_are_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        Term(**kwargs)


def test_negative_zero_probability_prints_as_zero():
    assert str(Term("off", probability=-0.0)) == "0%off"


def test_empty_terms_are_refused():
    with pytest.raises(ValueError):
        Terms(())


INVALID = [
    # (text, column, reason fragment)
    ("50%3*bogus(", 6, "unknown action 'bogus'"),
    ("", 1, "empty term"),
    ("1*error(x", 8, "unclosed '('"),
    ("1*off->", 8, "expected a term after '->'"),
    ("1*off junk", 6, "terms are joined with '->'"),
    ("1*off-1*error(x)", 6, "terms are joined with '->'"),
    ("150%off", 1, "over 100%"),
    ("3*50%off", 3, "probability must come before the count"),
    ("3*4*off", 3, "at most one count"),
    ("50%60%off", 4, "at most one probability"),
    ("12.5*off", 1, "must be a probability"),
    ("1.%off", 3, "digits after '.'"),
    ("*off", 1, "count before '*'"),
    ("%off", 1, "number before '%'"),
    ("3off", 2, "expected '%' or '*'"),
    ("1*delay(abc)", 9, "whole milliseconds"),
    ("delay(-5)", 7, "whole milliseconds"),
    ("delay", 6, "needs an argument"),
    ("1*off(x)", 6, "off takes no argument"),
    ("hang(5)", 5, "hang takes no argument"),
    ("off()", 5, "empty argument"),
    ("duplicate(0)", 11, "at least 1"),
    ("error(a\tb)", 8, "unprintable"),
    ("off->->off", 6, "expected an action"),
    ("1*", 3, "expected an action"),
    ("Error(x)", 1, "unknown action 'Error'"),
    ("1*pause", 3, "unknown action 'pause'"),
    ("٣*off", 1, "expected an action"),  # only ASCII digits count
    ("1234567890*off", 1, "too large"),
    ("delay(1234567890)", 7, "too large"),
    (" off", 1, "expected an action"),
]


@pytest.mark.parametrize(("text", "column", "reason"), INVALID)
def test_invalid_terms_name_the_column(text, column, reason):
    with pytest.raises(FailpointSyntaxError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.text == text
    assert err.column == column, str(err)
    assert reason in err.reason
    line = str(err)
    assert "\n" not in line
    assert f"at column {column}: " in line


def test_syntax_error_message_is_one_line_with_term_and_column():
    with pytest.raises(FailpointSyntaxError) as info:
        parse("50%3*bogus(")
    assert str(info.value) == (
        "bad failpoint term '50%3*bogus(' at column 6: unknown action 'bogus'"
    )


def test_syntax_error_escapes_newlines_and_survives_pickling():
    with pytest.raises(FailpointSyntaxError) as info:
        parse("off\n->drop")
    err = info.value
    assert "\n" not in str(err) and "\\n" in str(err)
    again = pickle.loads(pickle.dumps(err.with_context(name="x", source="SRC")))
    assert (again.text, again.column, again.reason) == (err.text, err.column, err.reason)
    assert str(again).startswith("SRC: bad failpoint term x='off")


def test_parse_refuses_non_text():
    with pytest.raises(TypeError):
        parse(b"off")  # type: ignore[arg-type]


def test_remaining_form_parses_back():
    # containerd's Marshal after one call of 1*off->1*error(x)
    terms = parse("0*off->1*error(x)")
    assert [t.count for t in terms] == [0, 1]
    assert str(terms) == "0*off->1*error(x)"
    assert str(parse("1*off->1*error(x)")[0].with_count(0)) == "0*off"


def test_assignments_split_outside_arguments_and_ignore_whitespace():
    specs = parse_assignments(" a=1*error(x;y) ;\n b = sleep(5) ;; c.d:e-f_g=off\n")
    assert {name: str(t) for name, t in specs.items()} == {
        "a": "1*error(x;y)",
        "b": "delay(5)",
        "c.d:e-f_g": "off",
    }
    assert format_assignments(specs) == "a=1*error(x;y);b=delay(5);c.d:e-f_g=off"
    assert parse_assignments("") == {}


@pytest.mark.parametrize(
    ("text", "name", "column", "reason"),
    [
        ("x=50%3*bogus(", "x", 6, "unknown action 'bogus'"),
        ("a=off;b=1*off->", "b", 8, "expected a term"),
        ("a=off;oops", None, 1, "expected name=spec"),
        ("a b=off", None, 1, "bad failpoint name"),
        ("a/b=off", None, 1, "bad failpoint name"),
        ("=off", None, 1, "bad failpoint name"),
        ("a=off;a=drop", None, 1, "given twice"),
    ],
)
def test_assignment_errors_name_the_failpoint(text, name, column, reason):
    with pytest.raises(FailpointSyntaxError) as info:
        parse_assignments(text, source="RECONVERGE_FAILPOINTS")
    err = info.value
    assert (err.name, err.column) == (name, column)
    assert reason in err.reason
    assert str(err).startswith("RECONVERGE_FAILPOINTS: bad failpoint term ")
    if name is not None:
        assert f" {name}='" in str(err)


@pytest.mark.parametrize("name", ["shim.Pause.after_apply", "Shutdown", "a:b-c_d", "x" * 128])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a;b", "a/b", "é", "x" * 129, "a\n"])
def test_bad_names(name):
    with pytest.raises(ValueError, match="bad failpoint name"):
        check_name(name)
