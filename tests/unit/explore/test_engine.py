"""The search loop with a fake runner (the real-process side is the integration smoke):
it finds, confirms k of n, shrinks, caches, honours its budgets, and is deterministic."""

from __future__ import annotations

import itertools
import time

from harness import journal
from harness.explore import schedule as S
from harness.explore.engine import Explorer, Options, derive
from harness.explore.result import Result
from harness.journal import merge
from harness.journal.record import Record
from harness.verdict import Finding


def _result(failed: bool) -> Result:
    if failed:
        return Result("DIVERGED", "leak: shim alive", [Finding("leak", ok=False, symptom="x")])
    return Result("CONVERGED", "ok", [Finding("leak", ok=True)])


def shutdown_leak(sched: S.Schedule) -> bool:
    """The seed-c shape: a Shutdown error armed, then the task goes away."""
    armed = False
    for s in sched.steps:
        if isinstance(s, S.ShimFault) and s.method == "Shutdown":
            armed = True
        if armed and isinstance(s, (S.Stop, S.KillTask)):
            return any(isinstance(x, S.Create) for x in sched.steps)
    return False


def _explore(runner, **kw) -> tuple[Explorer, list[S.Schedule]]:
    seen: list[S.Schedule] = []

    def run(sched: S.Schedule, label: str) -> Result:
        seen.append(sched)
        return runner(sched)

    opts = Options(seed=kw.pop("seed", 5), toxics=False, **kw)
    ex = Explorer(opts, run, log=lambda _: None)
    ex.search()
    return ex, seen


def test_finds_confirms_and_shrinks_to_the_three_steps_that_matter():
    ex, _ = _explore(lambda s: _result(shutdown_leak(s)), faults=("Shutdown",), max_examples=300)
    f = ex.found
    assert f.minimal is not None and f.first is not None
    steps = f.minimal.schedule.steps
    assert len(steps) == 3, f.minimal.schedule.table()
    assert {type(s) for s in steps} == {S.Create, S.ShimFault, S.Stop} or {
        type(s) for s in steps
    } == {S.Create, S.ShimFault, S.KillTask}
    assert len(f.first.schedule) >= len(steps)
    # confirmed: 2 failing runs of the minimal schedule (k=2 of at most n=3)
    assert [r.failed for r in f.minimal.runs] == [True, True]
    assert "failed 2 of 2 run(s) (confirm: 2 of at most 3)" in f.minimal.confirmation(2, 3)


def test_a_timing_accident_is_not_a_failure():
    flips = itertools.cycle([True, False, False])  # fails once, passes the two replays
    ex, seen = _explore(lambda s: _result(next(flips)), max_examples=5)
    assert ex.found.minimal is None
    assert all(d["verdict"] == "pass" for d in ex.found.decisions)
    distinct = {s.dumps() for s in seen}  # a schedule drawn twice is cached, not run again
    assert len(distinct) >= 2 and len(seen) == 3 * len(distinct)  # 1 failure + 2 passes each


def test_cached_schedules_are_not_run_again():
    ex, seen = _explore(lambda s: _result(shutdown_leak(s)), faults=("Shutdown",), max_examples=60)
    assert len(seen) == ex.found.runs
    keys = [s.dumps() for s in seen]
    # a schedule runs again only as a confirmation replay of a failure
    for k in set(keys):
        assert keys.count(k) == 1 or keys.count(k) in (2, 3)


def test_budget_spent_answers_not_run():
    ex, seen = _explore(lambda s: _result(False), minutes=1e-9, max_examples=20)
    assert seen == [] and ex.found.examples == 0
    assert {d["verdict"] for d in ex.found.decisions} == {"not run"}
    assert ex.found.decisions[0]["note"] == "search budget spent"


def test_three_broken_runs_stop_the_search():
    ex, seen = _explore(lambda s: Result("ERROR", "containerd went away"), max_examples=20)
    assert ex.found.aborted.startswith("3 runs in a row broke")
    assert len(seen) == 3 and ex.found.minimal is None


def test_one_seed_draws_the_same_decisions_twice():
    def journal(seed: int) -> list:
        ex, _ = _explore(lambda s: _result(shutdown_leak(s)), seed=seed, max_examples=40)
        return [(d["draws"], d["schedule"], d["verdict"]) for d in ex.found.decisions]

    assert journal(11) == journal(11)
    assert journal(11) != journal(12)


def test_shards_draw_from_different_seeds():
    seeds = {Options(seed=7, shard=(i, 4)).hypothesis_seed for i in range(4)}
    assert len(seeds) == 4
    assert Options(seed=7).hypothesis_seed == 7
    assert derive(7, "shard", 0, 4) == derive(7, "shard", 0, 4)


def test_with_a_bug_switch_a_failure_the_fixed_reconciler_shares_is_set_aside():
    ex, seen = _explore(
        lambda s: _result(shutdown_leak(s)),
        faults=("Shutdown",),
        bugs=("runtime.delete_not_retriable",),
        max_examples=40,
    )
    assert ex.found.minimal is None  # the failure is not the switch's: nothing to shrink
    assert ex.found.fixed_failures
    assert {d["verdict"] for d in ex.found.decisions} >= {"fails fixed too"}
    assert any(not s.bugs for s in seen)  # the control run had every fix on


def test_with_a_bug_switch_only_the_switch_failure_is_shrunk():
    ex, _ = _explore(
        lambda s: _result(bool(s.bugs) and shutdown_leak(s)),
        faults=("Shutdown",),
        bugs=("runtime.delete_not_retriable",),
        max_examples=300,
    )
    assert ex.found.minimal is not None and len(ex.found.minimal.schedule) == 3
    assert not ex.found.fixed_failures


def test_a_given_schedule_is_confirmed_and_shrunk_by_step_deletion():
    noisy = S.Schedule(
        (
            S.Heal(),
            S.Create("sb0"),
            S.Pause("sb0"),
            S.ShimFault("sb0", "Shutdown", "before", "error", "please retry"),
            S.Resume("sb0"),
            S.Stop("sb0"),
            S.Heal(),
        )
    )
    runs: list[S.Schedule] = []

    def run(sched: S.Schedule, label: str) -> Result:
        runs.append(sched)
        return _result(shutdown_leak(sched))

    ex = Explorer(Options(seed=1), run, log=lambda _: None)
    found = ex.shrink(noisy)
    assert found.minimal is not None
    assert [s.op for s in found.minimal.schedule.steps] == ["create", "shim_fault", "stop"]
    assert found.first is not None and len(found.first.schedule) == 7
    passing = Explorer(Options(seed=1), lambda s, _: _result(False), log=lambda _: None)
    assert passing.shrink(noisy).minimal is None


def test_an_unreadable_truth_runs_again_and_is_never_a_failure():
    answers = iter([Result("INCONCLUSIVE", "shim did not answer"), _result(False)])
    ex, seen = _explore(lambda s: next(answers, _result(False)), max_examples=1)
    assert len(seen) == 2 and ex.found.decisions[0]["verdict"] == "pass"
    ex, seen = _explore(lambda s: Result("INCONCLUSIVE", "x"), max_examples=1)
    assert len(seen) == 3 and ex.found.decisions[0]["verdict"] == "inconclusive"
    assert ex.found.minimal is None


def test_the_saved_failure_keeps_only_its_own_run_journal(tmp_path):
    """The run a failure is saved with (``minimal.first_failure``) gets its records from the
    world's run journal: its own window and namespace, not another run's, not another
    namespace's shim (which names its namespace once, before the window)."""
    shim_file = tmp_path / "journal" / "shim_sb0.4242.jsonl"  # another process: a shim

    def shim(event: str, **fields: object) -> None:
        rec = Record(time.monotonic(), time.time(), 4242, "shim:sb0", "shim", event, fields)
        with shim_file.open("a") as f:
            f.write(rec.to_json() + "\n")

    previous = journal.current()
    own = journal.configure(tmp_path, "explore")
    try:
        shim("serving", id="sb0", namespace="ns-old")  # it serves another namespace
        count = itertools.count()

        def run(sched: S.Schedule, label: str) -> Result:
            ns = f"ns-{next(count)}"
            journal.emit("explore", "env", namespace=ns, label=label)
            journal.emit("explore", "schedule", namespace=ns, steps=len(sched))
            shim("exiting", id="sb0")  # no namespace field: attributed by its pid
            journal.emit("reconciler", "reconcile", namespace="ns-other")
            journal.emit("reconciler", "delete", id="sb0")  # no namespace: by the window
            res = _result(shutdown_leak(sched))
            res.namespace = ns
            time.sleep(0.001)  # distinct monotonic stamps between runs (not a wait)
            return res

        opts = Options(seed=5, toxics=False, faults=("Shutdown",), max_examples=120)
        ex = Explorer(opts, run, log=lambda _: None)
        found = ex.search()
    finally:
        journal.set_current(previous)
        own.close()
    res = found.minimal.first_failure
    assert res is not None and res.window is not None
    kept = res.journal
    assert [(r.component, r.event) for r in kept] == [
        ("explore", "env"),
        ("explore", "schedule"),
        ("reconciler", "delete"),
    ]
    assert {r.fields.get("namespace") for r in kept} == {res.namespace, None}
    assert all(res.window[0] <= r.mono <= res.window[1] for r in kept)
    every = merge.load(tmp_path)
    assert len(every) > 3 * len(kept)  # the run journal holds every run's records
    # only the saved run's records are held, not every run's
    others = [r for ev in ex.cache.values() for r in ev.runs if r is not res]
    assert others and not any(r.journal for r in others)
