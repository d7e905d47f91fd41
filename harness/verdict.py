"""The verdict model: what a suite case concludes, and the evidence that conclusion needs.

Why one module owns it: a verdict that can be right for the wrong reason is worse than no
verdict. A buggy variant that merely "fails somehow" (a busy reconciler timing out, a
containerd that could not be asked) must not read as a reproduction, and a fixed variant
whose fault never fired proves nothing. So the rules live here, once, and the checks
(`harness/checks/`) only produce :class:`Finding` values; the pytest plugin, the runner and
the reports only consume :class:`Verdict` values.

The rules (:func:`decide`), in order:

1. any finding whose truth could not be observed -> ``INCONCLUSIVE``;
2. no fault declared, or a declared fault that fired zero times -> ``INCONCLUSIVE``;
3. buggy variant: ``CAUGHT`` only when the case's own **symptom predicate** holds on the
   findings (the seed's signature); a buggy case that fails differently is ``MISSED``
   with "failed differently: …";
4. fixed variant: ``CONVERGED`` when every finding is ok, else ``DIVERGED`` with the first
   finding's symptom.

``ERROR`` (the case itself broke) and ``SKIPPED`` (a component was missing and strict mode
was off) are set by the plugin, never by :func:`decide`.

The shape of a verdict row and of ``verdicts.json`` is owned here too: :class:`Verdict` (the
row), :func:`document` (the file), :func:`rows` (reading a file back, old or new),
:func:`case_key` (what ``reconverge run --repeat`` compares) and :func:`from_record` (a row
rebuilt from the journal's ``verdict`` record). The JSON Schema beside this module
(``verdict.schema.json``, :data:`SCHEMA_FILE`) describes the same file; a unit test keeps the
two in step.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Bumped whenever a field of :class:`Verdict` or of the file changes meaning or is removed.
#: 2: the file is an object (``schema``, ``seed``, ``versions``, ``verdicts``), rows gained
#: ``seed``, ``case_seed``, ``repro``, ``bundle`` and ``status``.
SCHEMA_VERSION = 2

#: The file every session writes (see docs/report.md for where).
FILE_NAME = "verdicts.json"

#: JSON Schema (draft 2020-12) of :data:`FILE_NAME`.
SCHEMA_FILE = Path(__file__).with_name("verdict.schema.json")


class Outcome(enum.StrEnum):
    """Every value a verdict table can show."""

    CAUGHT = "CAUGHT"  # buggy: the seed's symptom predicate held, fault fired, truth seen
    CONVERGED = "CONVERGED"  # fixed: every finding ok (through the hold window), fault fired
    MISSED = "MISSED"  # buggy: fault fired and truth seen, but the symptom did not hold
    DIVERGED = "DIVERGED"  # fixed: some finding not ok
    INCONCLUSIVE = "INCONCLUSIVE"  # a fault never fired or the truth could not be observed
    ERROR = "ERROR"  # the case raised outside its checkers, or recorded no verdict
    SKIPPED = "SKIPPED"  # a needed component is missing (only when not strict)
    PASSED = "PASSED"  # a plumbing case: no variants, the action did what it says


#: What each variant must conclude for its case to pass.
EXPECTED: dict[str, Outcome] = {"buggy": Outcome.CAUGHT, "fixed": Outcome.CONVERGED}


@dataclass
class Finding:
    """One checker's answer about the truth.

    ``observed=False`` says the checker could not read the truth at all (containerd, a
    shim or the API server did not answer): such a finding is neither ok nor a symptom.
    """

    check: str
    ok: bool
    symptom: str = ""
    details: list[str] = field(default_factory=list)
    observed: bool = True

    def __str__(self) -> str:
        head = self.symptom or ("ok" if self.ok else "not ok")
        if not self.observed:
            head = f"unobservable: {head}"
        return "\n".join([f"{self.check}: {head}", *(f"  {d}" for d in self.details)])

    def summary(self) -> dict[str, Any]:
        """The part of a finding a verdict row keeps (details stay in the journal)."""
        return {
            "check": self.check,
            "ok": self.ok,
            "observed": self.observed,
            "symptom": self.symptom[:200],
        }


#: A case's symptom predicate: given the findings by check name, the one-line symptom when
#: the seed's whole signature holds, else None. It must be specific: "some check failed"
#: is not a symptom.
Symptom = Callable[[Mapping[str, Finding]], "str | None"]


class Unobservable(Exception):
    """A truth source did not answer (a checker turns this into ``observed=False``)."""


@dataclass
class Verdict:
    """One row of the verdict table and of ``verdicts.json``."""

    suite: str
    case: str
    variant: str  # "buggy" | "fixed" | "-" (plumbing)
    fault: str
    outcome: str  # an Outcome value
    symptom: str
    seconds: float
    fired: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    nodeid: str = ""
    reason: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    #: the session seed: ``reconverge repro '<nodeid>@<seed>'`` replays the case with it
    seed: int | None = None
    #: the case's own seed (derived from ``seed`` and ``nodeid``: failpoint probabilities)
    case_seed: int | None = None
    #: the one shell line that replays the case (same seed, settings and forced faults)
    repro: str = ""
    #: the failure bundle directory (``<artifacts>/failures/<case>``), "" when none
    bundle: str = ""
    #: what pytest made of the case: passed, failed, skipped, error, or "not run" (the
    #: session stopped first) — a row can say CONVERGED while its teardown errored
    status: str = ""
    schema: int = SCHEMA_VERSION

    @property
    def expected(self) -> Outcome | None:
        return EXPECTED.get(self.variant)

    @property
    def ok(self) -> bool:
        """Does this verdict let its case pass?"""
        want = self.expected
        if want is None:
            return self.outcome in (Outcome.PASSED, Outcome.CONVERGED, Outcome.CAUGHT)
        return self.outcome == want

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """A row from its dict; unknown keys (a newer writer's) are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def key(self) -> str:
        """``suite::case[variant|fault]``: :func:`case_key` of this row."""
        return case_key(self.to_dict())

    def journal_fields(self) -> dict[str, Any]:
        """What the journal's ``verdict`` record carries (its event is the outcome)."""
        keep = ("suite", "case", "variant", "fault", "symptom", "fired", "nodeid", "reason")
        return {k: getattr(self, k) for k in keep}

    def fired_text(self) -> str:
        """``3`` or ``name=3,other=0``: what the table's "fired" column shows."""
        if not self.fired:
            return "-"
        if len(self.fired) == 1:
            return str(next(iter(self.fired.values())))
        return ",".join(f"{k}={v}" for k, v in self.fired.items())


def case_key(row: Mapping[str, Any]) -> str:
    """``suite::case[variant|fault]``: one case across repeats (node ids may differ)."""
    suite, case = row.get("suite", ""), row.get("case", "")
    return f"{suite}::{case}[{row.get('variant', '-')}|{row.get('fault', '-')}]"


def from_record(event: str, fields: Mapping[str, Any]) -> Verdict:
    """The row a journal ``verdict`` record describes (``event`` is the outcome).

    Why: a run dir without ``verdicts.json`` (a killed session) still shows its verdicts.
    """
    known = {k: v for k, v in fields.items() if k in Verdict.__dataclass_fields__}
    known.pop("outcome", None)
    base: dict[str, Any] = {"suite": "", "case": "", "variant": "-", "fault": "-", "symptom": ""}
    return Verdict.from_dict({**base, "seconds": 0.0, **known, "outcome": event})


def document(
    verdicts: Iterable[Verdict],
    *,
    seed: int | None,
    versions: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The content of ``verdicts.json`` (schema :data:`SCHEMA_VERSION`), rows in table order."""
    ordered = sorted(verdicts, key=lambda v: (v.suite, v.case, v.variant, v.fault, v.nodeid))
    return {
        "schema": SCHEMA_VERSION,
        "seed": seed,
        "versions": dict(versions or {}),
        "settings": dict(settings or {}),
        "verdicts": [v.to_dict() for v in ordered],
    }


def rows(data: Any) -> list[dict[str, Any]]:
    """The verdict rows of a parsed ``verdicts.json``: a schema-2 object or a schema-1 list.

    Anything else (a truncated file, another JSON document) gives no rows rather than an
    exception: callers show "no verdicts", and the schema test is where the shape is pinned.
    """
    if isinstance(data, dict):
        data = data.get("verdicts")
    if not isinstance(data, list):
        return []
    return [r for r in data if isinstance(r, dict) and "suite" in r and "outcome" in r]


def read(path: Path) -> list[Verdict]:
    """The rows of a ``verdicts.json`` file ([] when it is missing or unreadable)."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    return [Verdict.from_dict(r) for r in rows(data)]


def decide(
    *,
    variant: str,
    findings: Iterable[Finding],
    fired: Mapping[str, int],
    symptom: Symptom | None = None,
    fixed_text: str = "view = truth",
) -> tuple[Outcome, str]:
    """Apply the rules in the module docstring; returns the outcome and its one-line reason.

    ``symptom`` is required for a buggy variant (a buggy case without a predicate cannot be
    CAUGHT: it is reported MISSED with that reason, so the omission shows).
    """
    findings = list(findings)
    blind = [f for f in findings if not f.observed]
    if blind:
        return Outcome.INCONCLUSIVE, f"truth unobservable: {blind[0].check}: {blind[0].symptom}"
    if not fired:
        return Outcome.INCONCLUSIVE, "no fault declared: nothing proves the case exercised it"
    silent = [name for name, n in fired.items() if n <= 0]
    if silent:
        return Outcome.INCONCLUSIVE, f"fault never fired: {', '.join(silent)}"
    bad = [f for f in findings if not f.ok]
    if variant == "buggy":
        if symptom is None:
            return Outcome.MISSED, "no symptom predicate for this case"
        line = symptom({f.check: f for f in findings})
        if line:
            return Outcome.CAUGHT, line
        if bad:
            return Outcome.MISSED, f"failed differently: {bad[0].check}: {bad[0].symptom}"
        return Outcome.MISSED, "every checker passed"
    if bad:
        return Outcome.DIVERGED, f"{bad[0].check}: {bad[0].symptom}"
    return Outcome.CONVERGED, fixed_text


def evidence(findings: Iterable[Finding]) -> str:
    """Every finding, for an assertion message or a failure bundle."""
    return "\n".join(str(f) for f in findings)
