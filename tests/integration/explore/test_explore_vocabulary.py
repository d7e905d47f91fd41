"""The sandbox world's newer steps on real processes: containerd restarts, the two shim legs,
calls begun without waiting, the stub's held events and a late exit of an earlier
incarnation.

One ``SandboxWorld`` (containerd 1.6.20 + the stub shim + toxiproxy, as ``reconverge
explore`` builds it) runs every schedule here, one after the other, as an explore run does:
a schedule that restarted containerd leaves it up for the next one. Each test asserts what
the step did from the evidence it leaves (the step's answer, the journal, the verdict), not
from the step having run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.explore import schedule as S
from harness.explore.result import Result
from harness.journal import merge
from harness.reconciler.sandbox import bugs as B

pytestmark = [pytest.mark.needs("containerd", "toxiproxy", "socat")]


@pytest.fixture(scope="module")
def world(reconverge_run: Any) -> Iterator[Any]:
    from harness.explore.sandbox.world import SandboxWorld

    w = SandboxWorld(seed=12, run=reconverge_run).start()
    yield w
    assert w.containerd is not None
    w.containerd.stop()


def _run(world: Any, steps: list[S.Step], bugs: tuple[str, ...] = ()) -> Result:
    from harness.explore.sandbox.execute import Executor

    sched = S.Schedule(tuple(steps), bugs=bugs)
    with world.env("vocabulary") as env:
        result = Executor(env, sched).run()
    assert result.outcome != "ERROR", result.symptom
    return result


def _answers(result: Result) -> list[str]:
    return [s.answer for s in result.steps]


def test_containerd_restarts_and_the_next_schedule_finds_it_up(world: Any) -> None:
    """SIGTERM, then kill -9, mid-life of a sandbox: containerd is back each time (a new
    pid), the reconciler reconnects (the pause and resume after it answer ok) and the view
    converges; the next schedule runs on the restarted containerd."""
    pid0 = world.containerd.proc.pid
    result = _run(
        world,
        [
            S.Create("sb0"),
            S.ContainerdRestart(),
            S.Pause("sb0"),
            S.ContainerdRestart(kill=True),
            S.Resume("sb0"),
        ],
    )
    answers = _answers(result)
    assert answers[1].endswith("reconciler reconnected") and answers[3].endswith("reconnected")
    assert answers[2] == "ok" and answers[4] == "ok", answers
    assert world.containerd.proc.pid != pid0
    assert result.fired == {S.CONTAINERD_EFFECTS[False]: 1, S.CONTAINERD_EFFECTS[True]: 1}
    assert result.outcome == "CONVERGED", result.symptom
    after = _run(world, [S.Create("sb0"), S.Stop("sb0"), S.Delete("sb0")])
    assert _answers(after) == ["ok", "ok", "ok"] and after.outcome == "CONVERGED", after.symptom


def test_latency_on_the_containerd_to_shim_leg_slows_the_shims_calls(world: Any) -> None:
    """A toxic on containerd → shim sits on the relay proxy of the sandbox's own shim: the
    Pause under 300 ms of latency takes at least that, and heal removes it."""
    result = _run(
        world,
        [
            S.Create("sb0"),
            S.Toxic("latency", leg="containerd-shim", arg=300),
            S.Pause("sb0"),
            S.Heal(),
            S.Resume("sb0"),
        ],
    )
    assert result.steps[1].answer == "added on 1 shim relay(s)", result.steps[1]
    assert result.steps[2].answer == "ok" and result.steps[2].seconds >= 0.3, result.steps[2]
    assert result.fired == {"toxic latency on containerd-shim": 1}, result.fired
    assert result.outcome == "CONVERGED", result.symptom


def test_a_timeout_on_the_events_leg_loses_the_paused_event(world: Any) -> None:
    """A toxic on shim → containerd holds the shim's event Forwards: the Pause's
    /tasks/paused is sent into it and never reaches the reconciler's subscription while it
    is in force (the view converges from the RPC answer)."""
    result = _run(
        world,
        [
            S.Create("sb0"),
            S.Toxic("timeout", leg="shim-containerd"),
            S.Pause("sb0"),
            S.Heal(),
        ],
    )
    assert result.steps[2].answer == "ok"
    assert result.fired == {"toxic timeout on shim-containerd": 1}, result.fired
    assert result.outcome == "CONVERGED", result.symptom


def test_a_begun_pause_overlaps_a_reconciler_crash(world: Any) -> None:
    """``pause_async`` returns once the (slow) Pause is at the shim, so the restart kills the
    reconciler mid-pause; the shim pauses while it is down. Every fix on: DeadGC reconciles
    the stuck PAUSING (CONVERGED). With ``cube.deadgc_skips_stuck_pausing`` alone: PAUSING for
    good while the shim is PAUSED (DIVERGED) — the switch's symptom, from an overlap a
    blocking step cannot make."""
    steps = [
        S.ShimFault("sb0", "Pause", "before", "delay", "1200"),
        S.Create("sb0"),
        S.PauseAsync("sb0"),
        S.Restart(),
    ]
    fixed = _run(world, steps)
    assert fixed.steps[2].answer == "begun: the Pause is at the shim", fixed.steps[2]
    assert fixed.outcome == "CONVERGED", fixed.symptom
    buggy = _run(world, steps, bugs=(B.DEADGC_SKIPS_STUCK_PAUSING,))
    assert buggy.outcome == "DIVERGED", buggy.symptom
    assert "PAUSING" in buggy.symptom or "pausing_at" in buggy.symptom, buggy.symptom


def test_a_held_paused_event_leaves_after_the_resumed_one(world: Any) -> None:
    """``hold(tasks.resumed)`` on ``shim.publish.tasks.paused``: the stub sends /tasks/paused
    only after the next /tasks/resumed has left — its own events reordered."""
    result = _run(
        world,
        [
            S.Create("sb0"),
            S.ShimFault("sb0", "publish", "tasks.paused", "hold", "tasks.resumed"),
            S.Pause("sb0"),
            S.Resume("sb0"),
        ],
    )
    assert result.fired == {"shim.publish.tasks.paused": 1}, result.fired
    released = [
        r
        for r in merge.load(world.run.dir)
        if r.component == "shim" and r.event == "hold_released" and r.fields.get("by") == "trigger"
    ]
    assert released and released[-1].fields.get("topic") == "/tasks/paused", released


def test_a_late_exit_names_the_previous_incarnation(world: Any) -> None:
    """After the id was deleted and created again, ``late_exit`` makes the new shim publish
    /tasks/exit with the first incarnation's pid and exit time (its recorded values). Every
    fix on, the reconciler ignores an exit of a task it no longer runs: CONVERGED."""
    result = _run(
        world,
        [
            S.Create("sb0"),
            S.Stop("sb0"),
            S.Delete("sb0"),
            S.Create("sb0"),
            S.LateExit("sb0"),
        ],
    )
    answer = result.steps[4].answer
    assert answer.startswith("published: pid "), answer
    recorded = [
        r
        for r in merge.load(world.run.dir)
        if r.component == "explore" and r.event == "incarnation" and r.fields.get("id") == "sb0"
    ]
    first_pid = recorded[-2].fields.get("pid")
    assert answer.startswith(f"published: pid {first_pid} "), (answer, recorded[-2:])
    assert result.fired == {S.LATE_EXIT_EFFECT: 1}, result.fired
    assert result.outcome == "CONVERGED", result.symptom
