"""Task delete at our layer: retriable, and it owns the shim's Shutdown (§3, §4.3.8).

containerd 1.6.20 runs Shutdown after every task Delete but only logs a failure, then
forgets the shim (#8981). #14020 made containerd's Delete retriable; against 1.6.20 the
reconciler must do it itself: after containerd's Delete (success or NotFound) it checks
that the shim socket stopped answering and, if not, sends Shutdown straight to the shim
until it does, failing (→ backoff retry) while the shim lives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import journal
from harness.reconciler.sandbox import bugs
from harness.reconciler.sandbox.runtime import describe, is_not_found
from harness.wait import await_for

if TYPE_CHECKING:
    from harness.reconciler.sandbox.reconciler import SandboxReconciler


class ShimStillAlive(Exception):
    """The shim kept serving after containerd deleted its task: retry the Shutdown later."""


async def delete_task(rec: SandboxReconciler, sid: str) -> int:
    """Delete ``sid``'s task; returns its exit status (cached across retries)."""
    if rec.bug(bugs.DELETE_TIMEOUT_KILLS_RETRY):
        # seed c, CRI before #8954 (#7496): load the task first; NotFound reads as "already
        # deleted", so the sandbox is marked stopped and containerd's task service never
        # runs the Delete that would have shut the shim down.
        try:
            await rec.runtime.status(sid, timeout=rec.timing.reconcile_query)
        except Exception as exc:
            if is_not_found(exc):
                journal.emit("reconciler", "delete_skipped_not_found", id=sid)
                return rec.delete_results.get(sid, 255)
            raise
    try:
        status = await rec.runtime.delete(sid)
        rec.delete_results[sid] = status
        journal.emit("reconciler", "task_deleted", id=sid, exit_status=status)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        # NotFound: containerd (or an earlier attempt) already deleted it; the shim may live
        status = rec.delete_results.get(sid, 255)
        journal.emit("reconciler", "task_delete_not_found", id=sid, error=describe(exc))
    if rec.bug(bugs.DELETE_NOT_RETRIABLE):
        # seed c, containerd v1.6.20 / pre-#14020: trust containerd's success although its
        # Shutdown error was only logged.
        return status
    await ensure_shim_gone(rec, sid)
    return status


async def ensure_shim_gone(rec: SandboxReconciler, sid: str) -> None:
    """``Connect`` must fail; otherwise ``Shutdown`` the shim directly and re-check."""
    sb = rec.sandboxes.get(sid)
    address = sb.shim_address if sb else ""
    t = rec.timing
    if not address or not await rec.runtime.shim_answers(address, sid, t.shim_shutdown):
        return
    journal.emit("reconciler", "shim_outlived_delete", id=sid, address=address)
    try:
        await rec.runtime.shim_shutdown(address, sid, t.shim_shutdown)
    except Exception as exc:
        raise ShimStillAlive(f"shim of {sid}: Shutdown failed: {describe(exc)}") from exc

    async def gone() -> bool:
        return not await rec.runtime.shim_answers(address, sid, t.shim_shutdown)

    try:
        await await_for(gone, timeout=t.shim_cleanup, what=f"shim of {sid} exits")
    except Exception as exc:
        raise ShimStillAlive(f"shim of {sid} still answers Connect after Shutdown") from exc
