"""DeadGC's probe (F1) and the single-flight Delete (F3), on a stand-in runtime.

What is tested is the reconciler's decision, not the RPC: a probe that got no answer
writes nothing unless ``cube.deadgc_unknown_on_failed_probe`` is on; a Delete whose first
caller gave up keeps running and the next caller joins it, unless
``runtime.delete_timeout_kills_retry`` is on (then the retry sends its own).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from harness.reconciler.sandbox import bugs, deadgc, events, exits
from harness.reconciler.sandbox.reconciler import SandboxReconciler
from harness.reconciler.sandbox.record import EXITED, PAUSED, RUNNING, ContainerStatus, Sandbox


class StandInRuntime:
    """Status fails with ``status_error``; Delete blocks until ``release`` is set."""

    def __init__(self, status_error: BaseException | None = None) -> None:
        self.inflight = 0
        self.last_call_end = 0.0
        self.status_error = status_error
        self.release = asyncio.Event()
        self.deletes = 0
        self.concurrent = 0
        self.max_concurrent = 0

    async def status(self, sid: str, timeout: float) -> str:
        if self.status_error is not None:
            raise self.status_error
        return "STOPPED"

    async def delete(self, sid: str, timeout: float | None = None) -> int:
        self.deletes += 1
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            await self.release.wait()
        finally:
            self.concurrent -= 1
        return 137


def _rec(tmp_path: Path, runtime: StandInRuntime, *switches: str) -> SandboxReconciler:
    rec = SandboxReconciler(
        runtime,  # type: ignore[arg-type]
        tmp_path / "store.db",
        runtime_name="stand-in",
        bugs=switches,
    )
    rec.sandboxes["sb"] = Sandbox("sb", [ContainerStatus("sb", created_at=1, started_at=2)])
    return rec


def _not_found() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "task sb not found"
    )


@pytest.mark.parametrize("error", [TimeoutError("deadline"), _not_found()], ids=["timeout", "nf"])
def test_fixed_probe_without_an_answer_writes_nothing(tmp_path: Path, error: Exception) -> None:
    async def go() -> SandboxReconciler:
        rec = _rec(tmp_path, StandInRuntime(status_error=error))
        await deadgc.probe(rec, rec.sandboxes["sb"])
        return rec

    rec = asyncio.run(go())
    assert rec.writes == []
    assert rec.sandboxes["sb"].state() == RUNNING


def test_switch_probe_without_an_answer_writes_unknown(tmp_path: Path) -> None:
    async def go() -> SandboxReconciler:
        runtime = StandInRuntime(status_error=TimeoutError("deadline"))
        rec = _rec(tmp_path, runtime, bugs.DEADGC_UNKNOWN_ON_FAILED_PROBE)
        await deadgc.probe(rec, rec.sandboxes["sb"])
        return rec

    rec = asyncio.run(go())
    assert [(w.origin, w.fields.get("unknown")) for w in rec.writes] == [("probe", True)]


def test_pre108_deadgc_carries_the_unknown_write() -> None:
    """Probing a pausing shim only hurts through RecoverContainer's write."""
    chosen = bugs.validate({bugs.DEADGC_PROBES_PAUSING})
    assert chosen == {bugs.DEADGC_PROBES_PAUSING, bugs.DEADGC_UNKNOWN_ON_FAILED_PROBE}
    assert bugs.validate({bugs.DEADGC_UNKNOWN_ON_FAILED_PROBE}) == {
        bugs.DEADGC_UNKNOWN_ON_FAILED_PROBE
    }


async def _caller_gives_up_then_retry(rec: SandboxReconciler, runtime: StandInRuntime) -> int:
    """The exit handler's deadline passes mid-Delete; the backoff replay asks again."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(exits.delete_single_flight(rec, "sb"), 0.05)
    retry = asyncio.ensure_future(exits.delete_single_flight(rec, "sb"))
    await asyncio.sleep(0.05)  # let the retry reach the runtime (or join) before release
    runtime.release.set()
    return await asyncio.wait_for(retry, 5)


def test_fixed_retry_joins_the_delete_its_caller_gave_up_on(tmp_path: Path) -> None:
    runtime_box: list[StandInRuntime] = []

    async def go() -> tuple[int, SandboxReconciler]:
        runtime = StandInRuntime()
        runtime_box.append(runtime)
        rec = _rec(tmp_path, runtime)
        status = await _caller_gives_up_then_retry(rec, runtime)
        return status, rec

    status, rec = asyncio.run(go())
    runtime = runtime_box[0]
    assert status == 137
    assert (runtime.deletes, runtime.max_concurrent) == (1, 1)
    assert rec.deletes_inflight == {}  # the flight ended with the Delete


def test_switch_retry_sends_a_second_delete_alongside(tmp_path: Path) -> None:
    runtime_box: list[StandInRuntime] = []

    async def go() -> int:
        runtime = StandInRuntime()
        runtime_box.append(runtime)
        rec = _rec(tmp_path, runtime, bugs.DELETE_TIMEOUT_KILLS_RETRY)
        return await _caller_gives_up_then_retry(rec, runtime)

    asyncio.run(go())
    runtime = runtime_box[0]
    # the abandoned Delete goes on in the stand-in (as in containerd and the shim)
    assert runtime.deletes == 2


def test_crash_cancels_a_delete_nobody_waits_for(tmp_path: Path) -> None:
    async def go() -> StandInRuntime:
        runtime = StandInRuntime()
        rec = _rec(tmp_path, runtime)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(exits.delete_single_flight(rec, "sb"), 0.05)
        assert list(rec.deletes_inflight) == ["sb"]
        await rec.crash()
        assert rec.deletes_inflight == {}
        return runtime

    runtime = asyncio.run(go())
    assert runtime.concurrent == 0  # the Delete was cancelled, not left running


def test_exited_state_is_untouched_by_a_late_not_found(tmp_path: Path) -> None:
    """F1 as found: the probe's NotFound arrives after the exit handler marked EXITED."""

    async def go() -> SandboxReconciler:
        rec = _rec(tmp_path, StandInRuntime(status_error=_not_found()))
        sb = rec.sandboxes["sb"]
        probing = asyncio.ensure_future(deadgc.probe(rec, sb))
        rec.write(sb, "exit", finished_at=3, exit_code=137)
        await probing
        return rec

    rec = asyncio.run(go())
    assert [w.origin for w in rec.writes] == ["exit"]
    assert rec.sandboxes["sb"].state() == EXITED


class StatusRuntime(StandInRuntime):
    """Status answers ``state`` and counts the questions."""

    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state
        self.asked: list[str] = []

    async def status(self, sid: str, timeout: float) -> str:
        self.asked.append(sid)
        return self.state


@pytest.mark.parametrize(("shim", "written"), [("RUNNING", True), ("PAUSED", False)])
def test_restart_recheck_feeds_a_missed_resume(tmp_path: Path, shim: str, written: bool) -> None:
    """F4: a PAUSED record whose shim runs is resumed; one whose shim is paused is left."""

    async def go() -> tuple[SandboxReconciler, StatusRuntime]:
        runtime = StatusRuntime(shim)
        rec = _rec(tmp_path, runtime)
        rec.write(rec.sandboxes["sb"], "rpc_success", paused_at=3)
        rec.writes.clear()
        await events.recheck_after_restart(rec)
        return rec, runtime

    rec, runtime = asyncio.run(go())
    assert runtime.asked == ["sb"]
    assert (rec.sandboxes["sb"].state() == RUNNING) is written
    assert bool(rec.writes) is written


@pytest.mark.parametrize(("shim", "written"), [("PAUSED", True), ("RUNNING", False)])
def test_restart_recheck_feeds_a_missed_pause(tmp_path: Path, shim: str, written: bool) -> None:
    """F8: a RUNNING record whose shim paused (the PAUSING mark was not yet persisted when
    the reconciler was killed) is paused; one whose shim runs is left."""

    async def go() -> tuple[SandboxReconciler, StatusRuntime]:
        runtime = StatusRuntime(shim)
        rec = _rec(tmp_path, runtime)
        rec.writes.clear()
        await events.recheck_after_restart(rec)
        return rec, runtime

    rec, runtime = asyncio.run(go())
    assert runtime.asked == ["sb"]
    assert (rec.sandboxes["sb"].state() == PAUSED) is written
    assert bool(rec.writes) is written


def test_restart_recheck_leaves_pausing_to_deadgc(tmp_path: Path) -> None:
    async def go() -> StatusRuntime:
        runtime = StatusRuntime("PAUSED")
        rec = _rec(tmp_path, runtime)
        rec.write(rec.sandboxes["sb"], "rpc", pausing_at=3)
        await events.recheck_after_restart(rec)
        return runtime

    assert asyncio.run(go()).asked == []


def test_switch_restart_trusts_paused_asks_nothing(tmp_path: Path) -> None:
    async def go() -> StatusRuntime:
        runtime = StatusRuntime("RUNNING")
        rec = _rec(tmp_path, runtime, bugs.RESTART_TRUSTS_PAUSED)
        rec.write(rec.sandboxes["sb"], "rpc_success", paused_at=3)
        await events.recheck_after_restart(rec)
        return runtime

    assert asyncio.run(go()).asked == []
