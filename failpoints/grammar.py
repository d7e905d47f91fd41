"""The failpoint term language. This docstring is the specification; keep it true.

A *spec* says what a failpoint does on each evaluation. It is a chain of terms::

    spec     := term ( "->" term )*
    term     := [ percent "%" ] [ count "*" ] action [ "(" arg ")" ]
    percent  := DIGITS [ "." DIGITS ]        probability in percent, 0 to 100
    count    := DIGITS                      at most 9 digits; 0 means "spent"
    action   := off | error | delay | sleep | panic | return
              | close | drop | duplicate | hang | hold
    arg      := one or more printable characters up to the first ")" (spaces are fine)
    DIGITS   := one or more of the ASCII digits 0-9

There is no whitespace outside an argument (``error(please retry)`` is fine, ``1* off`` is
not). The modifiers come in this order only: ``50%3*delay(10)``, never ``3*50%delay(10)``.

Actions (``arg`` is kept as raw text; the call site interprets what ``apply`` does not)::

    off              nothing; the term exists to be counted: 1*off->1*error(x) fails call 2
    error[(msg)]     Action.apply raises FailpointError(msg); msg defaults to "failpoint <name>"
    delay(ms)        apply sleeps ms milliseconds (whole ms, required), then returns
    sleep(ms)        gofail's name for delay; parsed as delay and printed as delay
    panic[(msg)]     apply raises FailpointPanic(msg) (a BaseException, like a Go panic)
    return[(v)]      gofail's return: apply does nothing, the site hands v back
    close            apply does nothing; the site drops the connection
    drop             apply does nothing; the site swallows the reply or event
    duplicate[(n)]   apply does nothing; the site delivers n extra copies (n >= 1, default 1)
    hang             apply blocks until the point is released, disabled, re-enabled or
                     reset, or the caller's deadline passes (then FailpointHangTimeout)
    hold(key)        apply does nothing; the site holds what passes it (in order) until
                     whatever ``key`` names went by (e.g. an event topic), or the point is
                     released, disabled, re-enabled or reset (``Action.released``). ``key``
                     is 1 to 128 of ``A-Z a-z 0-9 . _ : - /`` (required)

``()`` with nothing inside is an error: leave the parentheses out instead, so every term has
exactly one spelling.

Evaluation (``Failpoint.evaluate``), after containerd's package with gofail's additions:

1. A disabled point returns ``None`` and counts nothing.
2. An enabled point counts a *hit*, then tries its terms left to right:

   - a term with a count of 0 is spent and skipped;
   - a term with a probability draws from the point's RNG; if the draw fails the term does
     **not** fire, its count is **not** used, and evaluation **falls through** to the next
     term (gofail's rule: the first term whose modifiers all allow it fires);
   - otherwise the term *fires*: its count (if any) goes down by one, the point counts a
     *trigger*, and ``evaluate`` returns that term's ``Action`` (for ``off`` too).

3. If no term fires, ``evaluate`` returns ``None``. So when every term is counted and spent
   the point is a no-op for good (containerd), while a term without a count fires forever
   (gofail). Each call fires at most one term.

Probability is replayable: each point draws from its own ``random.Random`` seeded with the
registry seed and the point's name, re-created whenever the point is enabled or the seed is
set. The same seed and the same sequence of evaluations of one point give the same
decisions, whatever other points do.

Canonical form: ``str(parse(text))`` writes the probability as its shortest decimal
(``50.0%`` -> ``50%``), numbers without leading zeros, and ``sleep`` as ``delay``; everything
else as given. ``parse(str(terms)) == terms`` always holds.

Remaining-state form (containerd's ``Marshal``): the same grammar with each count replaced
by what is left, e.g. ``0*off->1*error(x)`` after one call of ``1*off->1*error(x)``. It
parses back into a spec that carries on where the point left off (except for the RNG
position and the hit/trigger counters).

Compared with containerd's grammar (a subset of this one): the count is optional (no count
means forever), probability is allowed, there are more actions, and ``error``/``panic``
need no argument. Compared with gofail: modifiers have a fixed order, ``break`` and
``print`` do not exist, ``sleep`` takes milliseconds only (no ``"1s"`` durations), and
``return``'s value is raw text (quotes are kept as written).

Lists of assignments (environment variable, ``PUT /failpoints``, ``python -m failpoints
check``) are ``name=spec`` entries separated by ``;`` or newlines. Whitespace around an entry,
a name or a spec is ignored; an argument may contain ``;`` (it runs to its ``)``). A point name
is 1 to 128 of ``A-Z a-z 0-9 . _ : -``.

Every syntax error is a ``FailpointSyntaxError`` with the text, a 1-based column and a
reason, e.g. ``bad failpoint term '50%3*bogus(' at column 6: unknown action 'bogus'``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .errors import FailpointSyntaxError

__all__ = [
    "ACTIONS",
    "Term",
    "Terms",
    "check_name",
    "format_assignments",
    "parse",
    "parse_assignments",
]

ACTIONS: frozenset[str] = frozenset(
    {"off", "error", "delay", "panic", "return", "close", "drop", "duplicate", "hang", "hold"}
)
_ALIASES = {"sleep": "delay"}
_NO_ARG = frozenset({"off", "close", "drop", "hang"})
_NEEDS_ARG = frozenset({"delay", "hold"})
_MAX_DIGITS = 9  # counts and milliseconds; keeps int() and sleeps far from any limit
_ASCII_DIGITS = frozenset("0123456789")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_HOLD_KEY_RE = re.compile(r"[A-Za-z0-9._:/\-]{1,128}")


class _Problem(Exception):
    """An argument problem found without knowing its column (the caller adds it)."""


def _normalize_arg(kind: str, arg: str | None) -> str | None:
    """Check ``arg`` for ``kind`` and return its canonical text (raises ``_Problem``)."""
    if arg is None:
        if kind in _NEEDS_ARG:
            example = "tasks.paused" if kind == "hold" else "100"
            raise _Problem(f"{kind} needs an argument, e.g. {kind}({example})")
        return None
    if arg == "":
        raise _Problem("empty argument; leave out the parentheses")
    if kind in _NO_ARG:
        raise _Problem(f"{kind} takes no argument")
    for ch in arg:
        if not ch.isprintable():
            raise _Problem(f"unprintable character {ch!r} in argument")
        if ch == ")":
            raise _Problem("')' cannot appear in an argument")
    if kind in ("delay", "duplicate"):
        unit = "whole milliseconds" if kind == "delay" else "a whole number of copies"
        if not set(arg) <= _ASCII_DIGITS:
            raise _Problem(f"{kind} takes {unit}, got {arg!r}")
        digits = arg.lstrip("0") or "0"  # int() refuses very long digit strings
        if len(digits) > _MAX_DIGITS:
            raise _Problem(f"{kind} argument {arg} is too large")
        value = int(digits)
        if kind == "duplicate" and value < 1:
            raise _Problem("duplicate needs at least 1 copy")
        return str(value)
    if kind == "hold" and not _HOLD_KEY_RE.fullmatch(arg):
        raise _Problem(f"hold takes a key of 1 to 128 of A-Za-z0-9._:-/, got {arg!r}")
    return arg


def _format_percent(value: float) -> str:
    """Shortest decimal text for a probability, never in exponent notation."""
    return format(Decimal(repr(value)).normalize(), "f")


@dataclass(frozen=True, slots=True)
class Term:
    """One term: ``[probability%][count*]kind[(arg)]``. Validated on construction."""

    kind: str
    arg: str | None = None
    count: int | None = None
    probability: float | None = None  # percent, 0..100

    def __post_init__(self) -> None:
        kind = _ALIASES.get(self.kind, self.kind)
        if kind not in ACTIONS:
            raise ValueError(f"unknown action {self.kind!r}")
        try:
            arg = _normalize_arg(kind, self.arg)
        except _Problem as exc:
            raise ValueError(str(exc)) from None
        if self.count is not None and not (
            isinstance(self.count, int) and 0 <= self.count < 10**_MAX_DIGITS
        ):
            raise ValueError(f"count must be an int from 0 to {10**_MAX_DIGITS - 1}")
        probability = self.probability
        if probability is not None:
            probability = float(probability)
            if not 0.0 <= probability <= 100.0:  # also rejects NaN
                raise ValueError("probability must be from 0 to 100 (percent)")
            probability += 0.0  # -0.0 becomes 0.0, so the text never starts with '-'
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "arg", arg)
        object.__setattr__(self, "probability", probability)

    def __str__(self) -> str:
        text = self.kind if self.arg is None else f"{self.kind}({self.arg})"
        if self.count is not None:
            text = f"{self.count}*{text}"
        if self.probability is not None:
            text = f"{_format_percent(self.probability)}%{text}"
        return text

    def with_count(self, count: int | None) -> Term:
        """This term with another count (used to print the remaining state)."""
        return dataclasses.replace(self, count=count)


@dataclass(frozen=True, slots=True)
class Terms:
    """A parsed spec: a non-empty chain of terms. ``str()`` gives the canonical form."""

    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        if not terms:
            raise ValueError("a spec needs at least one term")
        if not all(isinstance(t, Term) for t in terms):
            raise TypeError("Terms holds Term values only")
        object.__setattr__(self, "terms", terms)

    def __str__(self) -> str:
        return "->".join(str(t) for t in self.terms)

    def __iter__(self) -> Iterator[Term]:
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def __getitem__(self, index: int) -> Term:
        return self.terms[index]


def parse(text: str) -> Terms:
    """Parse a spec such as ``50%3*delay(10)->error(boom)``.

    Raises:
        FailpointSyntaxError: the text does not follow the grammar in this module's docstring.
    """
    if not isinstance(text, str):
        raise TypeError(f"a failpoint spec is text, not {type(text).__name__}")
    if not text:
        raise FailpointSyntaxError(text, 1, "empty term")
    terms: list[Term] = []
    i = 0
    while True:
        term, i = _parse_term(text, i)
        terms.append(term)
        if i == len(text):
            return Terms(tuple(terms))
        if not text.startswith("->", i):
            raise _error(text, i, f"unexpected {text[i]!r}; terms are joined with '->'")
        i += 2
        if i == len(text):
            raise _error(text, i, "expected a term after '->'")


def _error(text: str, index: int, reason: str) -> FailpointSyntaxError:
    """A syntax error at 0-based ``index`` (reported 1-based)."""
    return FailpointSyntaxError(text, index + 1, reason)


def _scan(text: str, i: int, chars: frozenset[str]) -> int:
    """Index of the first character at or after ``i`` that is not in ``chars``."""
    n = len(text)
    while i < n and text[i] in chars:
        i += 1
    return i


def _parse_term(text: str, i: int) -> tuple[Term, int]:
    """Parse one term starting at ``i``; return it and the index just past it."""
    probability: float | None = None
    count: int | None = None

    j = _scan(text, i, _ASCII_DIGITS)
    if j < len(text) and text[j] == "." and j > i:
        k = _scan(text, j + 1, _ASCII_DIGITS)
        if k == j + 1:
            raise _error(text, k, "expected digits after '.'")
        if k == len(text) or text[k] != "%":
            raise _error(text, i, "a number with a fraction must be a probability, e.g. 12.5%")
        j = k
    if j < len(text) and text[j] == "%":
        if j == i:
            raise _error(text, i, "expected a number before '%'")
        probability = float(text[i:j])
        if probability > 100.0:
            raise _error(text, i, f"probability {text[i:j]}% is over 100%")
        i = j + 1
        j = _scan(text, i, _ASCII_DIGITS)
    if j < len(text) and text[j] == "*":
        if j == i:
            raise _error(text, i, "expected a count before '*'")
        digits = text[i:j].lstrip("0") or "0"  # int() refuses very long digit strings
        if len(digits) > _MAX_DIGITS:
            raise _error(text, i, f"count {text[i:j]} is too large")
        count = int(digits)
        i = j + 1
        j = _scan(text, i, _ASCII_DIGITS)
        if j > i and j < len(text) and text[j] in "%.":
            raise _error(text, i, "the probability must come before the count, e.g. 50%3*off")
    if j > i and j < len(text) and text[j] in "%*":
        what = "probability" if text[j] == "%" else "count"
        raise _error(text, i, f"a term has at most one {what}")
    if j > i:
        raise _error(text, j, "expected '%' or '*' after a number")
    if i < len(text) and text[i] in "%*":
        raise _error(text, i, f"expected a number before {text[i]!r}")

    start = i
    i = _scan(text, i, _ASCII_LETTERS)
    word = text[start:i]
    if not word:
        found = f"{text[start]!r}" if start < len(text) else "the end"
        raise _error(text, start, f"expected an action, found {found}")
    kind = _ALIASES.get(word, word)
    if kind not in ACTIONS:
        raise _error(text, start, f"unknown action {word!r}")

    arg: str | None = None
    arg_at = i
    if i < len(text) and text[i] == "(":
        close = text.find(")", i + 1)
        if close < 0:
            raise _error(text, i, "unclosed '('")
        arg = text[i + 1 : close]
        arg_at = i + 1
        for offset, ch in enumerate(arg):
            if not ch.isprintable():
                raise _error(text, arg_at + offset, f"unprintable character {ch!r} in argument")
        i = close + 1
    try:
        arg = _normalize_arg(kind, arg)
    except _Problem as exc:
        at = arg_at - 1 if kind in _NO_ARG and arg else arg_at
        raise _error(text, at, str(exc)) from None
    return Term(kind, arg, count, probability), i


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid point name.

    Raises:
        ValueError: the name is empty, too long, or has characters outside ``A-Za-z0-9._:-``
            (those would be ambiguous in ``name=spec`` lists and HTTP paths).
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"bad failpoint name {name!r}: use 1 to 128 of letters, digits and . _ : -"
        )
    return name


def _split_entries(text: str) -> Iterator[str]:
    """Yield the entries of a list, split at ``;`` and newlines outside arguments."""
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "(":
            close = text.find(")", i + 1)
            i = n if close < 0 else close + 1
            continue
        if ch in ";\n":
            yield text[start:i]
            start = i + 1
        i += 1
    yield text[start:]


def parse_assignments(text: str, *, source: str | None = None) -> dict[str, Terms]:
    """Parse ``name=spec;name=spec`` (all entries, or an error for the first bad one).

    Raises:
        FailpointSyntaxError: an entry is not ``name=spec``, names a point twice, has a bad
            name, or has a bad spec; the error names the failpoint and ``source``.
    """
    result: dict[str, Terms] = {}
    for raw in _split_entries(text):
        entry = raw.strip()
        if not entry:
            continue
        name, eq, spec = entry.partition("=")
        name, spec = name.strip(), spec.strip()
        if not eq:
            raise FailpointSyntaxError(entry, 1, "expected name=spec", source=source)
        try:
            check_name(name)
        except ValueError as exc:
            raise FailpointSyntaxError(entry, 1, str(exc), source=source) from None
        if name in result:
            raise FailpointSyntaxError(
                entry, 1, f"failpoint {name!r} is given twice", source=source
            )
        try:
            result[name] = parse(spec)
        except FailpointSyntaxError as exc:
            raise exc.with_context(name=name, source=source) from None
    return result


def format_assignments(specs: Mapping[str, Terms | str]) -> str:
    """``name=spec;…`` in the given order (the inverse of ``parse_assignments``)."""
    return ";".join(f"{name}={spec}" for name, spec in specs.items())
