"""Pause and resume, and the two convergers every path shares (§1.6, §4.3.1–4.3.4).

Two of the defence lines of CubeSandbox PR #404 (32a30f5c) live here, each behind its own
switch (7b6ad491 behaviour when on): the RPC gets its own deadline
(``cube.pause_no_own_deadline``) and an RPC error triggers a fresh status query
(``cube.no_reconcile_after_rpc_error``). Every write goes through :func:`converge_pause` /
:func:`converge_resume`, which never write ``unknown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import journal
from harness.reconciler.sandbox import bugs
from harness.reconciler.sandbox.errors import (
    TASK_PAUSE_FAILED,
    TASK_RESUME_FAILED,
    TASK_STATE_INVALID,
    SandboxError,
)
from harness.reconciler.sandbox.record import (
    LABEL_RESTORE_ATTACHED,
    LABEL_RESTORE_SNAPSHOT,
    LABEL_RUNTIME_ATTACHED,
    LABEL_RUNTIME_SNAPSHOT,
    SENTINEL_BINDING,
    Sandbox,
    now_ns,
)
from harness.reconciler.sandbox.runtime import describe

if TYPE_CHECKING:
    from harness.reconciler.sandbox.reconciler import SandboxReconciler


def _deadline(rec: SandboxReconciler, request: float | None, own: float) -> float | None:
    # seed a, CubeSandbox 7b6ad491: task.Pause/Resume ran on the caller's context, with no
    # deadline of its own; 32a30f5c derives a 30 s one from it.
    if rec.bug(bugs.PAUSE_NO_OWN_DEADLINE):
        return request
    return own if request is None else min(request, own)


async def pause(rec: SandboxReconciler, sid: str, request_timeout: float | None) -> None:
    """Pause a sandbox; on error straighten the local view, then still return the error."""
    async with rec.lifecycle_lock(sid):
        sb = rec.get(sid)
        if sb.is_paused():
            raise SandboxError(TASK_STATE_INVALID, "sandbox is already paused")
        if sb.is_terminated():
            raise SandboxError(TASK_STATE_INVALID, "sandbox is not running")
        rec.write(sb, "rpc", pausing_at=now_ns())
        # PausingAt is on disk before the RPC: the crash schedule kills us in this window.
        rec.persist(sb)
        await rec.hook("sandbox.pause.after_persist")
        sent = now_ns()
        try:
            await rec.runtime.pause(sid, _deadline(rec, request_timeout, rec.timing.pause_rpc))
        except Exception as exc:
            journal.emit("reconciler", "pause_failed", id=sid, error=describe(exc))
            # seed a, CubeSandbox 7b6ad491 returned the error and nothing else; 32a30f5c
            # straightens the view with one status query (reconcileStatusAfterPauseError)
            if not rec.bug(bugs.NO_RECONCILE_AFTER_RPC_ERROR):
                await reconcile_after_error(rec, sb, "pause", exc)
            raise SandboxError(TASK_PAUSE_FAILED, describe(exc)) from exc
        else:
            rec.write(sb, "rpc_success", paused_at=now_ns(), pausing_at=0)
            rec.note_change(sid, sent)
        finally:
            rec.persist(sb, quiet=True)  # the deferred SyncByID


async def resume(rec: SandboxReconciler, sid: str, request_timeout: float | None) -> None:
    """Resume a sandbox; on error converge from the shim's status when it says running."""
    async with rec.lifecycle_lock(sid):
        sb = rec.get(sid)
        if not sb.is_paused():
            raise SandboxError(TASK_RESUME_FAILED, "sandbox is not paused")
        sent = now_ns()
        try:
            await rec.runtime.resume(sid, _deadline(rec, request_timeout, rec.timing.resume_rpc))
        except Exception as exc:
            journal.emit("reconciler", "resume_failed", id=sid, error=describe(exc))
            # seed a: same line, resume direction (32a30f5c reconcileStatusAfterResumeError)
            if not rec.bug(bugs.NO_RECONCILE_AFTER_RPC_ERROR):
                await reconcile_after_error(rec, sb, "resume", exc)
            raise SandboxError(TASK_RESUME_FAILED, describe(exc)) from exc
        else:
            converge_resume(rec, sb, now_ns(), "rpc_success")
            rec.note_change(sid, sent)
        finally:
            rec.persist(sb, quiet=True)


async def reconcile_after_error(
    rec: SandboxReconciler, sb: Sandbox, direction: str, error: BaseException
) -> None:
    """One status query on a *fresh* deadline (the request's is probably spent). Unless it
    shows the call done, two more follow through the event intake
    (``events.recheck_outcome``, F9): the call may still land in the shim after it."""
    done = "PAUSED" if direction == "pause" else "RUNNING"
    asked_at = now_ns()
    try:
        status = await rec.runtime.status(sb.id, timeout=rec.timing.reconcile_query)
    except Exception as exc:  # no write: keep PausingAt visible; the event or DeadGC repairs
        journal.emit(
            "reconciler",
            "reconcile_query_failed",
            id=sb.id,
            direction=direction,
            error=describe(exc),
        )
        rec.recheck_later(sb.id, direction)
        return
    if status != done:
        rec.recheck_later(sb.id, direction)
    rec.note_change(sb.id, asked_at)
    reason = f"{direction} RPC error: {describe(error)}"
    if direction == "pause":
        converge_pause(rec, sb, status, "rpc_reconcile", reason)
    elif status == "RUNNING":
        converge_resume(rec, sb, now_ns(), "rpc_reconcile")


def converge_pause(
    rec: SandboxReconciler, sb: Sandbox, shim_status: str, origin: str, reason: str = ""
) -> None:
    """The pause direction's single source of truth; never writes ``unknown``."""
    journal.emit("reconciler", "converge_pause", id=sb.id, shim=shim_status, reason=reason)
    if shim_status == "PAUSED":
        rec.write(sb, origin, paused_at=now_ns(), pausing_at=0)
    elif shim_status in ("RUNNING", "CREATED"):
        rec.write(sb, origin, pausing_at=0)


def converge_resume(rec: SandboxReconciler, sb: Sandbox, attached_at: int, origin: str) -> None:
    """The resume direction's single source of truth: invalidate bindings, clear markers."""
    labels = {LABEL_RUNTIME_SNAPSHOT: SENTINEL_BINDING, LABEL_RESTORE_SNAPSHOT: SENTINEL_BINDING}
    if attached_at:
        stamp = str(attached_at)
        labels |= {LABEL_RUNTIME_ATTACHED: stamp, LABEL_RESTORE_ATTACHED: stamp}
    rec.write_labels(sb, origin, labels)
    rec.write(sb, origin, paused_at=0, pausing_at=0)
