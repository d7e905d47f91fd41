"""Event intake: containerd's event stream → per-key backoff queue → idempotent handlers.

Topics follow the switches: PR #404 (seed a) subscribes to ``/tasks/paused`` and
``/tasks/resumed``; the pre-fix CRI podsandbox controller (seed b, 0034ae95) also
subscribed to ``/tasks/exit`` and so deleted every sandbox twice. When the stream is lost
the intake relists — asks the shim's truth for every sandbox and feeds the same handlers —
because events missed while disconnected are never replayed (§3.6).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import journal
from harness.protos import events_pb2
from harness.reconciler.sandbox import bugs, exits
from harness.reconciler.sandbox.pause import converge_resume
from harness.reconciler.sandbox.record import PAUSED as PAUSED_STATE
from harness.reconciler.sandbox.record import RUNNING as RUNNING_STATE
from harness.reconciler.sandbox.record import now_ns
from harness.reconciler.sandbox.runtime import describe

if TYPE_CHECKING:
    from harness.reconciler.sandbox.reconciler import SandboxReconciler

PAUSED = "/tasks/paused"
RESUMED = "/tasks/resumed"
EXIT = "/tasks/exit"
READY = "/reconverge/reconciler-ready"


def topics(rec: SandboxReconciler) -> list[str]:
    out = []
    # seed a, CubeSandbox 7b6ad491 subscribed to /tasks/exit, /tasks/oom and /images/* only;
    # 32a30f5c adds /tasks/paused and /tasks/resumed (and our relist feeds those handlers)
    if not rec.bug(bugs.IGNORES_PAUSE_EVENTS):
        out += [PAUSED, RESUMED]
    if rec.bug(bugs.DUAL_EXIT_HANDLERS):  # seed b: 0034ae95 also Subscribe()d to exits
        out.append(EXIT)
    return out


@dataclass(frozen=True)
class Stamped:
    """An event with the time its change happened (containerd's ``Envelope.timestamp``).

    Why: TaskPaused/TaskResumed carry no time of their own, and the backoff queue replays
    what it was given; the stamp has to travel with the event to order it against the last
    change applied. A relist/recheck event is stamped with the time its status query began.
    """

    event: Any
    at_ns: int


def key_of(evt: Any) -> str:
    """``convertEvent``: TaskExit/TaskPaused/TaskResumed are keyed by container id."""
    return str(evt.container_id)


async def handle(rec: SandboxReconciler, item: Any) -> None:
    """Dispatch one event, bare or :class:`Stamped` (also what a backoff replay calls)."""
    evt, at_ns = (item.event, item.at_ns) if isinstance(item, Stamped) else (item, 0)
    if isinstance(evt, events_pb2.TaskExit):
        await exits.handle_sandbox_exit(rec, evt)
    elif isinstance(evt, events_pb2.TaskPaused):
        await on_paused(rec, evt, at_ns)
    elif isinstance(evt, events_pb2.TaskResumed):
        await on_resumed(rec, evt, at_ns)


async def on_paused(rec: SandboxReconciler, evt: events_pb2.TaskPaused, at_ns: int = 0) -> None:
    await _pause_event(rec, str(evt.container_id), paused=True, at_ns=at_ns)


async def on_resumed(rec: SandboxReconciler, evt: events_pb2.TaskResumed, at_ns: int = 0) -> None:
    await _pause_event(rec, str(evt.container_id), paused=False, at_ns=at_ns)


def _stale(rec: SandboxReconciler, cid: str, at_ns: int, topic: str) -> bool:
    """True when a change newer than this event was already applied (journaled).

    Why: the shim's events can reach us out of order (a held /tasks/paused released after
    /tasks/resumed); applied blindly the older one wins and the view stays PAUSED for good
    while the shim runs (reconverge explore, F5:
    suites/regressions/f5-paused-event-after-resumed.json). An unstamped event (0) is
    applied as before.
    """
    if at_ns <= 0:
        return False
    last = rec.last_change_ns.get(cid, 0)
    # seed a, CubeSandbox PR #404: the pause/resume handlers apply whatever arrives, in
    # arrival order (found by reconverge explore, F5)
    if at_ns < last and not rec.bug(bugs.APPLIES_STALE_PAUSE_EVENT):
        journal.emit("reconciler", "event_stale", id=cid, topic=topic, at_ns=at_ns, last_ns=last)
        return True
    rec.last_change_ns[cid] = max(last, at_ns)
    return False


async def _pause_event(rec: SandboxReconciler, cid: str, *, paused: bool, at_ns: int = 0) -> None:
    """Idempotent: a replay or a duplicate yields the same record (§1.6 event path)."""
    if cid.startswith("exec-"):
        return
    sb = rec.sandboxes.get(cid)
    if sb is None:
        return
    async with rec.object_lock(cid):  # the object lock, not the RPC lifecycle lock
        if sb.user_mark_deleted_at or sb.is_terminated():
            return  # do not backfill paused semantics once terminal
        if _stale(rec, cid, at_ns, PAUSED if paused else RESUMED):
            return
        if paused:
            rec.write(sb, "event", paused_at=sb.first.paused_at or now_ns(), pausing_at=0)
        elif rec.bug(bugs.RESUMED_EVENT_KEEPS_BINDINGS):
            # seed a: the first revision of PR #404 only cleared the markers on
            # /tasks/resumed; its third commit routed the event through the converger.
            rec.write(sb, "event", paused_at=0, pausing_at=0)
        else:
            converge_resume(rec, sb, now_ns(), "event")
        rec.persist(sb)  # a persistence error goes to the backoff queue


async def run(rec: SandboxReconciler) -> None:
    """Subscribe, dispatch, and on a lost stream relist and subscribe again."""
    wanted = topics(rec)
    if not wanted:
        rec.subscribed.set()
        return
    ns = rec.runtime.namespace
    filters = [f'namespace=={ns},topic=="{t}"' for t in (*wanted, READY)]
    lost = False
    while True:
        prober = asyncio.ensure_future(_announce(rec))
        try:
            async for env in rec.runtime.client.subscribe(*filters):
                if env.topic == READY:
                    if not rec.subscribed.is_set():
                        rec.subscribed.set()
                        journal.emit("reconciler", "event_stream_ready")
                        if lost:
                            await relist(rec)
                    continue
                if env.event is None:
                    continue
                journal.emit("reconciler", "event_in", topic=env.topic, id=key_of(env.event))
                item = (
                    Stamped(env.event, env.timestamp_ns)
                    if env.topic in (PAUSED, RESUMED)
                    else env.event
                )
                await rec.backoff.handle(key_of(env.event), item)
            raise ConnectionError("event stream ended")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream is lost: relist once it is back
            rec.subscribed.clear()
            lost = True
            journal.emit("reconciler", "event_stream_lost", error=describe(exc))
            await asyncio.sleep(rec.timing.backoff_tick)
        finally:
            prober.cancel()


async def _announce(rec: SandboxReconciler) -> None:
    """Publish readiness probes until our own subscription delivers one.

    Why: a gRPC server stream gives no signal when containerd has registered it, and an
    event published before that is lost; seeing our own probe proves the stream is live.
    """
    while not rec.subscribed.is_set():
        try:
            await rec.runtime.client.publish(READY, events_pb2.TaskPaused(container_id="-"), 1.0)
        except Exception as exc:  # the stream loop notices a dead connection itself
            journal.emit("reconciler", "ready_probe_failed", error=describe(exc))
        await asyncio.sleep(0.05)


async def recheck_after_restart(rec: SandboxReconciler) -> None:
    """After a restart: ask the shim about every RUNNING and PAUSED record, and feed the
    pause or resume it missed.

    Why: a restart has no event replay. A Resume that reached the shim while the reconciler
    was being killed leaves the record PAUSED (F4:
    suites/regressions/f4-resume-lost-across-restart.json), and a Pause begun just before the
    kill — its PAUSING mark not yet persisted — leaves it RUNNING while the shim pauses (F8:
    suites/regressions/f8-pause-lost-across-restart.json). DeadGC skips PAUSED on purpose
    and does not look at RUNNING, so nothing else would ever look again. PAUSING records are
    left to DeadGC's stuck-PAUSING pass, which exists for them.
    """
    if rec.bug(bugs.RESTART_TRUSTS_PAUSED):
        # seed a, CubeSandbox restart: records reloaded as persisted, no event replay,
        # DeadGC skips PAUSED -> a pause/resume finished while it was down is never seen
        return
    live = [
        sid
        for sid, sb in rec.sandboxes.items()
        if sb.state() in (PAUSED_STATE, RUNNING_STATE) and not sb.user_mark_deleted_at
    ]
    if not live:
        return
    journal.emit("reconciler", "recheck_after_restart", sandboxes=live)
    for sid in live:
        asked_at = now_ns()
        try:
            status = await rec.runtime.status(sid, timeout=rec.timing.reconcile_query)
        except Exception as exc:  # not observed: the record stays; the shim's event may come
            journal.emit("reconciler", "recheck_query_failed", id=sid, error=describe(exc))
            continue
        sb = rec.sandboxes.get(sid)
        if sb is None:
            continue
        evt: Any = None
        if status == "RUNNING" and sb.state() == PAUSED_STATE:
            evt = events_pb2.TaskResumed(container_id=sid)
        elif status == "PAUSED" and sb.state() == RUNNING_STATE and PAUSED in topics(rec):
            evt = events_pb2.TaskPaused(container_id=sid)
        if evt is not None:
            await rec.backoff.handle(sid, Stamped(evt, asked_at))


async def recheck_outcome(rec: SandboxReconciler, sid: str, direction: str) -> None:
    """After a Pause/Resume RPC error: ask the shim again once the call could have landed,
    and feed the pause or resume the view lacks to the event handlers.

    Why: the RPC-error reconcile asks once, right after the error; a call that outlived its
    deadline can still complete in the shim after that answer, and then only its
    ``/tasks/paused`` (``/tasks/resumed``) event would tell us. Events are at-most-once: a
    lost one left the view RUNNING over a PAUSED shim for good (reconverge explore, F9:
    suites/regressions/f9-pause-lands-after-reconcile-event-lost.json). Two more queries,
    one and three own deadlines after the error, close that window. Part of the event
    intake (it feeds the handlers, as the relist does), so it exists only when the pause
    topics are subscribed.
    """
    evt_cls = events_pb2.TaskPaused if direction == "pause" else events_pb2.TaskResumed
    topic = PAUSED if direction == "pause" else RESUMED
    if topic not in topics(rec):
        return
    wait = rec.timing.pause_rpc if direction == "pause" else rec.timing.resume_rpc
    for delay in (wait, 2 * wait):
        await asyncio.sleep(delay)
        sb = rec.sandboxes.get(sid)
        if sb is None or sb.is_terminated() or sb.user_mark_deleted_at:
            return
        asked_at = now_ns()
        try:
            status = await rec.runtime.status(sid, timeout=rec.timing.reconcile_query)
        except Exception as exc:  # not observed: the next query (or the relist) may see it
            journal.emit("reconciler", "outcome_query_failed", id=sid, error=describe(exc))
            continue
        sb = rec.sandboxes.get(sid)
        if sb is None:
            return
        lacks_pause = status == "PAUSED" and sb.state() == RUNNING_STATE
        lacks_resume = status == "RUNNING" and sb.is_paused()
        if (direction == "pause" and lacks_pause) or (direction == "resume" and lacks_resume):
            journal.emit("reconciler", "outcome_recheck", id=sid, shim=status)
            await rec.backoff.handle(sid, Stamped(evt_cls(container_id=sid), asked_at))
            return


async def relist(rec: SandboxReconciler) -> None:
    """Feed the handlers what the shims say now, for every live sandbox."""
    journal.emit("reconciler", "relist", sandboxes=len(rec.sandboxes))
    for sid, sb in list(rec.sandboxes.items()):
        if sb.is_terminated():
            continue
        asked_at = now_ns()
        try:
            status = await rec.runtime.status(sid, timeout=rec.timing.reconcile_query)
        except Exception as exc:
            journal.emit("reconciler", "relist_query_failed", id=sid, error=describe(exc))
            continue
        evt: Any = None
        if status == "PAUSED" and sb.state() != "PAUSED" and PAUSED in topics(rec):
            evt = events_pb2.TaskPaused(container_id=sid)
        elif status == "RUNNING" and sb.is_paused() and RESUMED in topics(rec):
            evt = events_pb2.TaskResumed(container_id=sid)
        if evt is not None:
            await rec.backoff.handle(sid, Stamped(evt, asked_at))
