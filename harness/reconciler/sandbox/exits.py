"""Sandbox exit → task delete, with one owner (§2, §4.3.7).

The exit watcher (``task.Wait``) is the only deleter in the fixed controller (containerd
2042e805b); its failures go to the backoff queue under the sandbox id, with a TaskExit that
carries the sandbox id so the replay can find the sandbox. Deletes are single-flight per id:
a second caller awaits the first one's result instead of sending another Delete.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc

from harness import journal
from harness.protos import events_pb2
from harness.reconciler.sandbox import bugs, delete
from harness.reconciler.sandbox.record import now_ns
from harness.reconciler.sandbox.runtime import describe, is_not_found

if TYPE_CHECKING:
    from harness.reconciler.sandbox.reconciler import SandboxReconciler


async def watch(rec: SandboxReconciler, sid: str) -> None:
    """Wait for the sandbox task to exit, then handle the exit (inline, else backoff)."""
    try:
        await _watch(rec, sid)
    finally:
        rec.watch_unsure.discard(sid)


async def _watch(rec: SandboxReconciler, sid: str) -> None:
    while True:
        try:
            status = await rec.runtime.wait(sid)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_not_found(exc):
                status = 255  # the task is already gone: still run the exit handling
                break
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            journal.emit("reconciler", "wait_failed", id=sid, error=describe(exc), code=str(code))
            # Until containerd answers again the task may have exited unseen: the exit
            # handling (Delete, then the exit write) is still owed, so the reconciler is not
            # quiescent (busy() says so). Found by reconverge explore (F7): a quiescence
            # judged while the Wait was failing saw the later Delete->write gap as a
            # divergence (suites/regressions/f7-exit-owed-while-wait-reset.json).
            rec.watch_unsure.add(sid)
            await asyncio.sleep(rec.timing.backoff_tick)  # the connection comes back; wait again
            await _requery(rec, sid)
    evt = events_pb2.TaskExit(container_id=sid, id=sid, exit_status=status)
    if rec.bug(bugs.WATCHER_EXIT_WITHOUT_ID):
        # seed b, containerd 0034ae95: waitSandboxExit built its TaskExit without ID. Its own
        # handling has the sandbox in hand, but the event handler a backoff replay goes
        # through looks sandboxes up by e.ID -> the replay finds nothing and counts as
        # success. 2042e805b fills ID and ContainerID with the sandbox id.
        evt.id = ""
    journal.emit("reconciler", "sandbox_exit", id=sid, exit_status=status, owner="watcher")
    try:
        await asyncio.wait_for(handle_sandbox_exit(rec, evt, sid=sid), rec.timing.exit_handle)
    except Exception as exc:
        rec.backoff.backoff(sid, evt, exc)


async def _requery(rec: SandboxReconciler, sid: str) -> None:
    """After a failed Wait: ask the task's status; a live task's re-armed Wait is sure again.

    A STOPPED (or gone) task stays unsure: the next Wait returns at once and its exit
    handling clears the mark; an unanswered query leaves it unsure too.
    """
    try:
        status = await rec.runtime.status(sid, timeout=rec.timing.reconcile_query)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        journal.emit("reconciler", "watch_requery_failed", id=sid, error=describe(exc))
        return
    if status != "STOPPED":
        rec.watch_unsure.discard(sid)
    journal.emit("reconciler", "watch_requeried", id=sid, status=status)


async def handle_sandbox_exit(
    rec: SandboxReconciler, evt: events_pb2.TaskExit, *, sid: str = ""
) -> None:
    """Delete the task, then mark the sandbox exited (``handleSandboxTaskExit``).

    ``sid``: the watcher's own call, which holds the sandbox; events (and backoff replays)
    find it by ``e.ID``, to exclude exec exits.
    """
    sb = rec.sandboxes.get(sid or str(evt.id))
    if sb is None:
        journal.emit("reconciler", "exit_without_sandbox", id=evt.id, container_id=evt.container_id)
        return
    status = await delete_single_flight(rec, sb.id)
    async with rec.object_lock(sb.id):
        if not sb.first.finished_at:
            rec.write(sb, "exit", finished_at=now_ns(), exit_code=int(status))
        rec.persist(sb)
    rec.exited(sb.id)


async def delete_single_flight(rec: SandboxReconciler, sid: str) -> int:
    """One Delete in flight per id; later callers share its outcome.

    The Delete runs as a task of its own that callers join (shielded): a caller whose
    deadline passes (the exit handler's) stops waiting, the Delete goes on, and the backoff
    replay joins it instead of sending a second Delete into the same shim while the first
    is still there (found by reconverge explore, F3:
    suites/regressions/two-deletes-after-exit-deadline.json).
    """
    if rec.bug(bugs.DUAL_EXIT_HANDLERS):
        # seed b, containerd 0034ae95: watcher and subscriber each called task.Delete; no
        # per-id guard anywhere, so both Deletes reach the shim concurrently.
        return await delete.delete_task(rec, sid)
    pending = rec.deletes_inflight.get(sid)
    if pending is not None:
        journal.emit("reconciler", "delete_joined", id=sid)
        return await asyncio.shield(pending)
    if rec.bug(bugs.DELETE_TIMEOUT_KILLS_RETRY):
        # seed c, CRI before #8954 (#7496): the Delete runs on the caller's context, so the
        # exit handler's deadline abandons it while containerd and the shim carry on; the
        # single flight ends with it and the retry runs on its own (and sees NotFound).
        return await _delete_on_caller(rec, sid)
    task = asyncio.ensure_future(delete.delete_task(rec, sid))
    rec.deletes_inflight[sid] = task
    task.add_done_callback(lambda t: _delete_done(rec, sid, t))
    return await asyncio.shield(task)


def _delete_done(rec: SandboxReconciler, sid: str, task: asyncio.Future[int]) -> None:
    """The single flight ends with the Delete itself, not with a caller's wait."""
    if rec.deletes_inflight.get(sid) is task:
        del rec.deletes_inflight[sid]
    if not task.cancelled():
        task.exception()  # retrieved: every caller may have stopped waiting (deadline)


async def _delete_on_caller(rec: SandboxReconciler, sid: str) -> int:
    """The pre-#8954 single flight: it lasts as long as the first caller waits."""
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    rec.deletes_inflight[sid] = fut
    try:
        status = await delete.delete_task(rec, sid)
    except BaseException as exc:
        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("delete cancelled"))
        fut.exception()  # mark retrieved: joiners re-raise it, nobody else must
        raise
    else:
        fut.set_result(status)
        return status
    finally:
        rec.deletes_inflight.pop(sid, None)
