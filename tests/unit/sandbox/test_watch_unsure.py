"""An exit watcher cut off from containerd keeps the reconciler busy until it knows again (F7).

Why: reconverge explore (seed 202) killed a task while the reconciler's connection to
containerd was reset. The watcher's Wait kept failing, ``busy()`` said idle, so the end
check judged quiescence (view RUNNING over a STOPPED shim); when the channel came back the
watcher's Delete removed the shim before the exit write, and the hold saw "view RUNNING but
the shim is gone". The reconciler owes that exit while its Wait fails: it must say so.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from harness.reconciler.sandbox import exits
from harness.reconciler.sandbox.reconciler import SandboxReconciler
from harness.reconciler.sandbox.record import EXITED, RUNNING, ContainerStatus, Sandbox
from harness.reconciler.sandbox.timing import Timing


def _unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "reset by peer"
    )


class CutOffRuntime:
    """Every call fails UNAVAILABLE until ``up`` is set; then the task is ``state``."""

    def __init__(self, state: str) -> None:
        self.inflight = 0
        self.last_call_end = 0.0
        self.up = asyncio.Event()
        self.state = state
        self.deletes = 0

    async def wait(self, sid: str) -> int:
        if not self.up.is_set():
            raise _unavailable()
        if self.state != "STOPPED":
            await asyncio.Event().wait()  # a live task's Wait blocks
        return 137

    async def status(self, sid: str, timeout: float) -> str:
        if not self.up.is_set():
            raise _unavailable()
        return self.state

    async def delete(self, sid: str, timeout: float | None = None) -> int:
        self.deletes += 1
        return 137


def _rec(tmp_path: Path, runtime: CutOffRuntime) -> SandboxReconciler:
    rec = SandboxReconciler(
        runtime,  # type: ignore[arg-type]
        tmp_path / "store.db",
        runtime_name="stand-in",
        timing=Timing().scaled(0.01),
    )
    rec.sandboxes["sb"] = Sandbox("sb", [ContainerStatus("sb", created_at=1, started_at=2)])
    return rec


async def _until(pred: object, what: str, timeout: float = 5.0) -> None:
    """Poll ``pred`` (a callable) until it holds; fail naming ``what`` on timeout."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_exit_owed_while_wait_fails_keeps_busy_until_handled(tmp_path: Path) -> None:
    async def go() -> tuple[dict[str, object], dict[str, object], str, int]:
        rt = CutOffRuntime("STOPPED")
        rec = _rec(tmp_path, rt)
        watcher = asyncio.ensure_future(exits.watch(rec, "sb"))
        await _until(lambda: rec.watch_unsure, "the first failed Wait")
        cut_off = rec.busy()
        rt.up.set()
        await asyncio.wait_for(watcher, 5)
        return cut_off, rec.busy(), rec.sandboxes["sb"].state(), rt.deletes

    cut_off, after, state, deletes = asyncio.run(go())
    assert cut_off.get("exit_watch_unsure") == ["sb"]
    assert after == {}
    assert (state, deletes) == (EXITED, 1)


def test_live_task_requeried_is_sure_again_while_its_wait_blocks(tmp_path: Path) -> None:
    async def go() -> tuple[dict[str, object], dict[str, object], str]:
        rt = CutOffRuntime("RUNNING")
        rec = _rec(tmp_path, rt)
        watcher = asyncio.ensure_future(exits.watch(rec, "sb"))
        await _until(lambda: rec.watch_unsure, "the first failed Wait")
        cut_off = rec.busy()
        rt.up.set()
        await _until(lambda: not rec.watch_unsure, "the status re-query")
        after = rec.busy()
        assert not watcher.done()  # the re-armed Wait blocks on the live task
        watcher.cancel()
        return cut_off, after, rec.sandboxes["sb"].state()

    cut_off, after, state = asyncio.run(go())
    assert cut_off.get("exit_watch_unsure") == ["sb"]
    assert after == {}
    assert state == RUNNING
