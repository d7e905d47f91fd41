"""The follow-up status queries after a Pause/Resume RPC error (F9), on a stand-in runtime.

What is tested is the reconciler's decision: when the RPC-error reconcile's one query does
not show the call done, the event intake asks again later and feeds the pause (resume)
the view lacks; quiescence (``busy``) waits for those queries; either switch of the two
lines the follow-up extends turns it off.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.reconciler.sandbox import bugs, pause
from harness.reconciler.sandbox.reconciler import SandboxReconciler
from harness.reconciler.sandbox.record import PAUSED, RUNNING, ContainerStatus, Sandbox
from harness.reconciler.sandbox.timing import Timing


class ScriptedRuntime:
    """Status answers from ``answers`` in order (the last one repeats) and counts them."""

    def __init__(self, *answers: str) -> None:
        self.inflight = 0
        self.answers = list(answers)
        self.asked = 0

    async def status(self, sid: str, timeout: float) -> str:
        self.asked += 1
        return self.answers[min(self.asked, len(self.answers)) - 1]


def _rec(tmp_path: Path, runtime: ScriptedRuntime, *switches: str) -> SandboxReconciler:
    rec = SandboxReconciler(
        runtime,  # type: ignore[arg-type]
        tmp_path / "store.db",
        runtime_name="stand-in",
        bugs=switches,
        timing=Timing().scaled(0.001),  # own deadlines of 30 ms: the follow-ups come fast
    )
    rec.sandboxes["sb"] = Sandbox("sb", [ContainerStatus("sb", created_at=1, started_at=2)])
    return rec


async def _pause_error_then_settle(rec: SandboxReconciler) -> dict[str, object]:
    """A Pause that failed at its deadline; returns what ``busy`` said right after."""
    sb = rec.sandboxes["sb"]
    rec.write(sb, "rpc", pausing_at=3)
    await pause.reconcile_after_error(rec, sb, "pause", TimeoutError("deadline exceeded"))
    busy = rec.busy()
    await asyncio.gather(*rec._rechecks)
    return busy


def test_a_pause_that_lands_after_the_query_is_fed_later(tmp_path: Path) -> None:
    runtime = ScriptedRuntime("RUNNING", "PAUSED")

    async def go() -> tuple[SandboxReconciler, dict[str, object]]:
        rec = _rec(tmp_path, runtime)
        return rec, await _pause_error_then_settle(rec)

    rec, busy = asyncio.run(go())
    assert busy.get("outcome_rechecks") == 1, busy
    assert rec.sandboxes["sb"].state() == PAUSED
    assert rec.writes[-1].origin == "event", rec.writes[-1]
    assert runtime.asked == 2  # the reconcile's query and the first follow-up


def test_a_query_that_shows_the_pause_done_owes_nothing(tmp_path: Path) -> None:
    runtime = ScriptedRuntime("PAUSED")

    async def go() -> tuple[SandboxReconciler, dict[str, object]]:
        rec = _rec(tmp_path, runtime)
        return rec, await _pause_error_then_settle(rec)

    rec, busy = asyncio.run(go())
    assert "outcome_rechecks" not in busy, busy
    assert rec.sandboxes["sb"].state() == PAUSED
    assert runtime.asked == 1


def test_a_pause_that_never_lands_is_asked_about_twice_more(tmp_path: Path) -> None:
    runtime = ScriptedRuntime("RUNNING")

    async def go() -> SandboxReconciler:
        rec = _rec(tmp_path, runtime)
        await _pause_error_then_settle(rec)
        return rec

    rec = asyncio.run(go())
    assert rec.sandboxes["sb"].state() == RUNNING
    assert runtime.asked == 3


def test_without_the_pause_events_nothing_is_fed(tmp_path: Path) -> None:
    """``cube.ignores_pause_events``: the follow-up feeds the event handlers, so it goes
    with them (that switch's explorer case must still fail)."""
    runtime = ScriptedRuntime("RUNNING", "PAUSED")

    async def go() -> SandboxReconciler:
        rec = _rec(tmp_path, runtime, bugs.IGNORES_PAUSE_EVENTS)
        await _pause_error_then_settle(rec)
        return rec

    rec = asyncio.run(go())
    assert rec.sandboxes["sb"].state() == RUNNING
    assert runtime.asked == 1
