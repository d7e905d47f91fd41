"""One run's result, in every world: its outcome, symptom, findings and step records.

Why its own module: the engine, the merge and every world's executor share it, and the
engine must not import a world (the sandbox world pulls grpc and the suites' fixtures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.journal.record import Record
from harness.verdict import Finding, Outcome


@dataclass
class StepRecord:
    """What one step did: its answer and whether the reconciler settled after it."""

    index: int
    op: str
    text: str
    answer: str
    seconds: float
    settled: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Result:
    """One run of one schedule."""

    outcome: str  # an Outcome value: CONVERGED, DIVERGED, INCONCLUSIVE, ERROR
    symptom: str
    findings: list[Finding] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    namespace: str = ""
    #: (start, end) on the shared monotonic clock: the engine notes when ``runner`` ran it
    window: tuple[float, float] | None = None
    #: this run's journal records (filled by the engine only for the run a failure is saved
    #: with: holding every run's journal would grow with the search)
    journal: list[Record] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A schedule the invariants rejected (what the explorer hunts for)."""
        return self.outcome == Outcome.DIVERGED

    @property
    def check(self) -> str:
        """The first failed check's name ("" when none failed)."""
        bad = [f for f in self.findings if f.observed and not f.ok]
        return bad[0].check if bad else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "symptom": self.symptom,
            "check": self.check,
            "findings": [f.summary() for f in self.findings],
            "steps": [s.to_json() for s in self.steps],
            "fired": self.fired,
            "seconds": round(self.seconds, 2),
            "namespace": self.namespace,
        }


def judge(findings: list[Finding]) -> tuple[str, str]:
    """The explorer's rule: a truth that could not be read is INCONCLUSIVE (never a pass,
    never a failure to shrink), any failed invariant is DIVERGED, else CONVERGED.

    Why not ``verdict.decide``: a schedule the explorer drew may arm a fault that never
    fires, and the invariants still hold or fail; a never-fired fault is journaled in
    ``fired`` instead. The regression suite judges its files with ``decide`` itself.
    """
    blind = [f for f in findings if not f.observed]
    bad = [f for f in findings if f.observed and not f.ok]
    if bad:
        return Outcome.DIVERGED, f"{bad[0].check}: {bad[0].symptom}"
    if blind:
        return Outcome.INCONCLUSIVE, f"truth unobservable: {blind[0].check}: {blind[0].symptom}"
    return Outcome.CONVERGED, "invariants held: safety at every step, view = truth, no leak"
