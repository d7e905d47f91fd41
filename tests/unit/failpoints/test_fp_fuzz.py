"""Property tests: generated terms round-trip; arbitrary text only ever fails as a syntax error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failpoints import FailpointSyntaxError, Term, Terms, parse
from failpoints.grammar import ACTIONS, parse_assignments

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_arg_char = st.characters().filter(lambda c: c.isprintable() and c != ")")
_text_arg = st.text(_arg_char, min_size=1, max_size=12)
_counts = st.integers(min_value=0, max_value=10**9 - 1)


@st.composite
def terms(draw: st.DrawFn) -> Term:
    kind = draw(st.sampled_from(sorted(ACTIONS | {"sleep"})))
    if kind in ("off", "close", "drop", "hang"):
        arg = None
    elif kind in ("delay", "sleep"):
        arg = str(draw(_counts))
    elif kind == "duplicate":
        arg = draw(st.none() | st.integers(1, 10**9 - 1).map(str))
    elif kind == "hold":
        arg = draw(st.from_regex(r"[A-Za-z0-9._:/\-]{1,128}", fullmatch=True))
    else:
        arg = draw(st.none() | _text_arg)
    count = draw(st.none() | _counts)
    probability = draw(st.none() | st.floats(min_value=0.0, max_value=100.0))
    return Term(kind, arg, count, probability)


specs = st.lists(terms(), min_size=1, max_size=5).map(lambda ts: Terms(tuple(ts)))


@FUZZ
@given(specs)
def test_round_trip(spec):
    text = str(spec)
    assert parse(text) == spec
    assert str(parse(text)) == text


# token soup: reaches deep into the grammar far more often than uniform characters do
_tokens = st.sampled_from(
    [
        "%",
        "*",
        "->",
        "-",
        ">",
        "(",
        ")",
        ".",
        "0",
        "1",
        "50",
        "12.5",
        "999999999999",
        "off",
        "error",
        "delay",
        "sleep",
        "panic",
        "return",
        "close",
        "drop",
        "duplicate",
        "hang",
        "bogus",
        ";",
        "=",
        "a",
        " ",
        "\n",
        "\t",
        "é",
        "☃",
        "\x00",
        "\ud800",
        "٣",
    ]
)
_soup = st.lists(_tokens, max_size=16).map("".join)
_random_text = st.one_of(_soup, st.text(max_size=40))


@FUZZ
@given(_random_text)
def test_random_text_parses_or_raises_syntax_error(text):
    try:
        spec = parse(text)
    except FailpointSyntaxError as err:
        assert err.text == text
        assert 1 <= err.column <= len(text) + 1
        assert "\n" not in str(err)
        assert err.reason
    else:
        assert parse(str(spec)) == spec
        assert str(parse(str(spec))) == str(spec)


@FUZZ
@given(_random_text)
def test_random_assignment_lists_parse_or_raise_syntax_error(text):
    try:
        specs = parse_assignments(text)
    except FailpointSyntaxError as err:
        assert "\n" not in str(err)
    else:
        for name, spec in specs.items():
            assert "=" not in name and ";" not in name
            assert parse(str(spec)) == spec
