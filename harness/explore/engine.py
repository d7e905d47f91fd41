"""The explorer: Hypothesis draws schedules, real processes judge them (issue #12 §2–4).

Why ``@given(schedules())`` and not a ``RuleBasedStateMachine``: each example here costs
seconds of real containerd, shim and reconciler work, and must be replayable from a file. A
schedule drawn whole is a value — it is cached by its canonical JSON (Hypothesis's shrinker
often proposes a schedule it already ran), saved, replayed by ``reconverge repro``, and
judged only after the heal, when quiescence can be waited for. The list-shaped strategy
shrinks by deleting steps and lowering choices, which is what a person wants to read.

Differential: with bug switches on, a confirmed failure is run again with every fix on
(twice: one pass may be luck); if the fixed reconciler fails it too, the failure is not the
switch's — it is set aside as a finding about the fixed reconciler
(``Finding.fixed_failures``) and Hypothesis is not asked to shrink it.

Confirmation: a schedule that fails once is run again until it failed ``k`` of at most ``n``
runs (:data:`CONFIRM`); only a confirmed failure is reported to Hypothesis, so a timing
accident can neither invent a failure nor make a shrink step look like progress. A run whose
truth could not be read is INCONCLUSIVE, never a failure, and is run again (up to ``n``); a
schedule is inconclusive only when no run could read the truth.

Budgets: ``minutes`` bounds the search; a failure starts a shrink budget of its own. Past
a budget a schedule not yet run is answered "not run" (journaled as such) so Hypothesis
stops quickly and replays its smallest failure, which is cached.

Journal: the engine notes each run's window on the monotonic clock; when the search ends
(the world still up) it cuts the journal of the run a failure is saved with out of the
world's run journal (:mod:`harness.explore.failure_journal`), for the report's swimlanes.

Determinism: one master seed (and the shard) derives Hypothesis's seed, namespace names
and the world's run seed (toxiproxy ``-seed``); every example's draws are journaled with
their index (:class:`harness.explore.draws.DrawLog`) in ``decisions.jsonl``, which
``--check-determinism`` diffs between two runs of one seed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hseed
from hypothesis.database import DirectoryBasedExampleDatabase

from harness import journal
from harness.explore import failure_journal, worlds
from harness.explore import schedule as S
from harness.explore.draws import DrawLog
from harness.explore.result import Result
from harness.verdict import Outcome

#: (k, n): a failure counts once it failed k of at most n runs
CONFIRM = (2, 3)
#: runs with every fix on that must all pass before a --bug failure counts as the switch's
CONTROL_RUNS = 2
#: the part of the shrink budget Hypothesis's shrinker gets; the step-deletion pass the rest
HYPOTHESIS_SHARE = 0.7
#: consecutive ERROR runs after which the world is taken as broken and the search stops
MAX_ERRORS = 3


def derive(seed: int, *parts: object) -> int:
    """A 32-bit seed derived from the master seed (shards, runs) — stable across versions."""
    text = ":".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@dataclass
class Options:
    """What one explore run searches, and for how long."""

    seed: int
    world: str = "sandbox"
    minutes: float = 5.0
    max_examples: int = 1000
    max_steps: int = 8
    sandboxes: int = 1
    faults: tuple[str, ...] = ()
    toxics: bool = True
    bugs: tuple[str, ...] = ()
    shrink_minutes: float = 6.0
    shard: tuple[int, int] = (0, 1)
    database: Path | None = None
    confirm: tuple[int, int] = CONFIRM
    #: with bug switches on, a failure counts only when the fixed reconciler passes it
    differential: bool = True

    @property
    def hypothesis_seed(self) -> int:
        i, n = self.shard
        return self.seed if n == 1 else derive(self.seed, "shard", i, n)


@dataclass
class Evaluation:
    """A schedule's judgement after confirmation."""

    schedule: S.Schedule
    verdict: str  # fail | pass | inconclusive | error | not run | fails fixed too
    runs: list[Result] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    @property
    def first_failure(self) -> Result | None:
        return next((r for r in self.runs if r.failed), None)

    def confirmation(self, k: int, n: int) -> str:
        fails = sum(r.failed for r in self.runs)
        return f"failed {fails} of {len(self.runs)} run(s) (confirm: {k} of at most {n})"


@dataclass
class Finding:
    """The explorer's answer: the smallest confirmed failure, or none."""

    first: Evaluation | None = None  # the first confirmed failure (before shrinking)
    minimal: Evaluation | None = None  # what Hypothesis shrank it to
    time_to_find: float = 0.0
    seconds: float = 0.0
    examples: int = 0
    runs: int = 0
    shrink_runs: int = 0
    errors: int = 0
    inconclusive: int = 0
    aborted: str = ""
    #: schedules that failed with every fix on too (a ``--bug`` search sets them aside)
    fixed_failures: list[Evaluation] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)


class ScheduleFailed(Exception):
    """Raised into Hypothesis for a confirmed failure (one class: one bug to shrink)."""

    def __init__(self, evaluation: Evaluation) -> None:
        super().__init__(evaluation.schedule.dumps())
        self.evaluation = evaluation


Runner = Callable[[S.Schedule, str], Result]


class Explorer:
    """Search with Hypothesis; ``runner(schedule, label)`` runs one schedule for real."""

    def __init__(
        self,
        options: Options,
        runner: Runner,
        *,
        log: Callable[[str], None] = print,
        decisions: Path | None = None,
    ) -> None:
        self.o = options
        self.runner = runner
        self.say = log
        self.decisions_path = decisions
        self.cache: dict[str, Evaluation] = {}
        self.found = Finding()
        self._t0 = 0.0
        self._shrink_t0: float | None = None
        self._deleting = False
        self._consecutive_errors = 0
        self._example = 0
        self._run_dir: Path | None = None

    # -- budgets -------------------------------------------------------------------------------
    def _spent(self) -> str:
        now = time.monotonic()
        if self.found.aborted:
            return self.found.aborted
        if self._shrink_t0 is not None:
            share = 1.0 if self._deleting else HYPOTHESIS_SHARE
            if now - self._shrink_t0 > self.o.shrink_minutes * 60 * share:
                return "shrink budget spent"
            return ""
        if now - self._t0 > self.o.minutes * 60:
            return "search budget spent"
        return ""

    # -- one schedule --------------------------------------------------------------------------
    def _run(self, sched: S.Schedule, label: str) -> Result:
        # the world journals into its run directory; note where and when this run was, so
        # the saved failure's run can be cut out of it (failure_journal) while it still exists
        self._run_dir = journal.current().run_dir
        start = time.monotonic()
        result = self.runner(sched, label)
        result.window = (start, time.monotonic())
        self.found.runs += 1
        if self._shrink_t0 is not None:
            self.found.shrink_runs += 1
        if result.outcome == Outcome.ERROR:
            self.found.errors += 1
            self._consecutive_errors += 1
            if self._consecutive_errors >= MAX_ERRORS:
                self.found.aborted = f"{MAX_ERRORS} runs in a row broke: {result.symptom}"
        else:
            self._consecutive_errors = 0
        return result

    def evaluate(self, sched: S.Schedule, draws: list[tuple[int, str, Any]]) -> Evaluation:
        """Judge ``sched`` (cached; a failure is confirmed k of at most n)."""
        key = sched.dumps()
        self._example += 1
        n = self._example
        cached = self.cache.get(key)
        if cached is not None:
            self._decide(n, draws, sched, cached, cached=True)
            return cached
        spent = self._spent()
        if spent:
            ev = Evaluation(sched, "not run")
            self._decide(n, draws, sched, ev, cached=False, note=spent)
            return ev  # not cached: a later budget may still run it
        self.found.examples += 1
        k, most = self.o.confirm
        runs = [self._run(sched, f"{n}")]
        # a pass is one run; a failure runs again until k fails or it cannot get there; a
        # run whose truth could not be read runs again too (it is an accident, not an answer)
        while len(runs) < most:
            fails = sum(r.failed for r in runs)
            unread = runs[-1].outcome == Outcome.INCONCLUSIVE
            if fails >= k or (fails == 0 and not unread):
                break
            if fails and fails + (most - len(runs)) < k:
                break
            runs.append(self._run(sched, f"{n}.{len(runs)}"))
        fails = sum(r.failed for r in runs)
        control: Result | None = None
        if fails >= k and self.o.bugs and self.o.differential:
            # the switch's bug, or one the fixed reconciler has too? one run with every fix on
            fixed = S.Schedule(sched.steps, world=sched.world)
            for c in range(CONTROL_RUNS):  # a pass of the fixed one may be luck: ask twice
                control = self._run(fixed, f"{n}.fixed{c}")
                if control.failed:
                    break
        if fails >= k and control is not None and control.failed:
            verdict = "fails fixed too"
            self.found.fixed_failures.append(Evaluation(fixed, "fail", [control]))
        elif fails >= k:
            verdict = "fail"
        elif any(r.outcome == Outcome.ERROR for r in runs):
            verdict = "error"
        elif all(r.outcome == Outcome.INCONCLUSIVE for r in runs):
            verdict = "inconclusive"
            self.found.inconclusive += 1
        else:
            verdict = "pass"
        ev = Evaluation(sched, verdict, runs)
        self.cache[key] = ev
        self._decide(n, draws, sched, ev, cached=False)
        phase = "shrink" if self._shrink_t0 is not None else "search"
        first = ev.first_failure or runs[-1]
        self.say(
            f"explore #{n} [{phase}] {len(sched)} step(s): {verdict}"
            + (f" — {first.symptom[:120]}" if verdict != "pass" else "")
            + (f" ({ev.confirmation(k, most)})" if fails else "")
            + (f"; with every fix on: {control.outcome}" if control is not None else "")
            + f" [{sum(r.seconds for r in runs):.1f}s]"
        )
        if ev.failed and self.found.first is None:
            self.found.first = ev
            self.found.time_to_find = time.monotonic() - self._t0
            self._shrink_t0 = time.monotonic()
        return ev

    def _decide(
        self,
        n: int,
        draws: list[tuple[int, str, Any]],
        sched: S.Schedule,
        ev: Evaluation,
        *,
        cached: bool,
        note: str = "",
    ) -> None:
        """One decision record: the draws (with their index), the schedule, the verdict."""
        rec = {
            "example": n,
            "draws": [[i, what, value] for i, what, value in draws],
            "schedule": sched.to_json()["steps"],
            "verdict": ev.verdict,
            "runs": [r.outcome for r in ev.runs] if not cached else [],
            "cached": cached,
        }
        if note:
            rec["note"] = note
        self.found.decisions.append(rec)
        journal.emit("explore", "decision", example=n, verdict=ev.verdict, cached=cached)
        if self.decisions_path is not None:
            with self.decisions_path.open("a") as f:
                f.write(json.dumps(rec, sort_keys=True, default=str) + "\n")

    # -- the search ----------------------------------------------------------------------------
    def search(self) -> Finding:
        o = self.o
        draw_log = DrawLog()
        strategy = worlds.hooks(o.world).strategy(o, draw_log)
        db = DirectoryBasedExampleDatabase(str(o.database)) if o.database else None
        phases = [Phase.generate, Phase.shrink] + ([Phase.reuse] if db else [])

        @settings(
            max_examples=o.max_examples,
            deadline=None,
            database=db,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            report_multiple_bugs=False,
            print_blob=False,
        )
        @hseed(o.hypothesis_seed)
        @given(strategy)
        def explore_world(sched: S.Schedule) -> None:
            ev = self.evaluate(sched, list(draw_log.draws))
            if ev.failed:
                raise ScheduleFailed(ev)

        self._t0 = time.monotonic()
        try:
            explore_world()
        except ScheduleFailed as exc:
            self.found.minimal = self._delete_steps(exc.evaluation)
        self._keep_journal()
        self.found.seconds = time.monotonic() - self._t0
        return self.found

    def shrink(self, sched: S.Schedule) -> Finding:
        """Confirm a given schedule and shrink it by step deletion (no Hypothesis: a saved
        schedule, e.g. one set aside under ``fixed-failures/``, has no choice sequence)."""
        self._t0 = time.monotonic()
        ev = self.evaluate(sched, [(0, "given schedule", len(sched))])
        if ev.failed:
            self.found.minimal = self._delete_steps(ev)
        self._keep_journal()
        self.found.seconds = time.monotonic() - self._t0
        return self.found

    def _keep_journal(self) -> None:
        """Cut the journal of the run a failure is saved with (``minimal.first_failure``)
        out of the world's run journal — now, while the world (and its run dir) is up.

        Only that run: every run's records held in memory would grow with the search."""
        res = self.found.minimal.first_failure if self.found.minimal else None
        if res is not None and not res.journal:
            res.journal = failure_journal.cut(self._run_dir, res.window, res.namespace)

    def _delete_steps(self, ev: Evaluation) -> Evaluation:
        """Greedy one-step deletions after Hypothesis, each confirmed like any candidate.

        Why: steps are drawn against a model, so deleting one in the choice sequence can
        change the meaning of the next draws, and Hypothesis may keep a step that does
        nothing (a refused delete, a create of a live sandbox). Removing steps from the
        *schedule* has no such coupling; it runs on the rest of the shrink budget.
        """
        self._deleting = True
        changed = True
        while changed and len(ev.schedule) > 1:
            changed = False
            for i in reversed(range(len(ev.schedule))):
                steps = ev.schedule.steps[:i] + ev.schedule.steps[i + 1 :]
                cand = S.Schedule(steps, world=ev.schedule.world, bugs=ev.schedule.bugs)
                got = self.evaluate(cand, [(0, "delete step", i + 1)])
                if got.verdict == "not run":
                    return ev
                if got.failed:
                    ev, changed = got, True
                    break
        return ev
