"""The reference sandbox reconciler: state, wiring and lifecycle (§4).

It manages sandboxes through containerd's gRPC API (the client it is given — through
toxiproxy in the suites), persists records in sqlite, and runs three background loops: the
event intake, the backoff ticker and DeadGC, plus one exit watcher per sandbox. Handlers
live in their own modules (``pause``, ``events``, ``deadgc``, ``exits``, ``delete``); this
module only holds what they share. ``crash()`` models kill -9: the store closes first so
nothing more is written, then every task is cancelled; a new instance on the same store is
the restart (§4.3.9).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import failpoints
from harness import journal
from harness.reconciler.sandbox import bugs as bugs_mod
from harness.reconciler.sandbox import deadgc, events, exits, pause
from harness.reconciler.sandbox.backoff import BackoffQueue
from harness.reconciler.sandbox.errors import NOT_FOUND, STOP_FAILED, SandboxError
from harness.reconciler.sandbox.record import (
    LABEL_RESTORE_SNAPSHOT,
    LABEL_RUNTIME_SNAPSHOT,
    ContainerStatus,
    Sandbox,
    now_ns,
)
from harness.reconciler.sandbox.runtime import Runtime, describe
from harness.reconciler.sandbox.store import SandboxStore, StoreClosed
from harness.reconciler.sandbox.timing import Timing


@dataclass(frozen=True)
class Write:
    """One write to a record, with where it came from (the convergence checker reads these)."""

    t: float
    sandbox: str
    origin: str  # rpc, rpc_success, rpc_reconcile, event, deadgc, probe, exit, create
    fields: dict[str, Any]


class SandboxReconciler:
    """One node agent's sandbox controller."""

    def __init__(
        self,
        runtime: Runtime,
        store_path: Path,
        *,
        runtime_name: str,
        bugs: Iterable[str] = (),
        timing: Timing | None = None,
        generation: int = 0,
        incarnations: dict[str, int] | None = None,
    ) -> None:
        self.runtime = runtime
        self.runtime_name = runtime_name
        self.bugs = bugs_mod.validate(bugs)
        self.timing = timing or Timing()
        self.generation = generation
        self.store = SandboxStore(store_path)
        self.sandboxes: dict[str, Sandbox] = {}
        self.writes: list[Write] = []
        self.backoff = BackoffQueue(lambda evt: events.handle(self, evt), self.timing, "events")
        self.deletes_inflight: dict[str, asyncio.Future[int]] = {}
        self.delete_results: dict[str, int] = {}
        self.subscribed = asyncio.Event()
        # per sandbox: the time (shim clock, ns) of the last pause/resume change applied from
        # an event; an older event is stale (events.py _stale, F5). In memory: an event held
        # across a restart is not delivered to the new subscription anyway.
        self.last_change_ns: dict[str, int] = {}
        self.deadgc_ticks = 0
        self._lifecycle: dict[str, asyncio.Lock] = {}
        self._objects: dict[str, asyncio.Lock] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._watchers: dict[str, asyncio.Task[Any]] = {}
        # exit watchers whose Wait failed and whose task's status is not known since: an
        # exit may be owed (exits.watch; busy() reports them, F7)
        self.watch_unsure: set[str] = set()
        self._ops: set[asyncio.Task[Any]] = set()
        # status queries owed after a Pause/Resume RPC error (events.recheck_outcome, F9)
        self._rechecks: set[asyncio.Task[Any]] = set()
        self.crashed = False
        # creations per sandbox id; the host passes its own dict so the count outlives a
        # restart (a checker tells a re-created sandbox from the one it replaced by it)
        self.incarnations: dict[str, int] = incarnations if incarnations is not None else {}

    # -- shared helpers ----------------------------------------------------------------------
    def bug(self, name: str) -> bool:
        return name in self.bugs

    def get(self, sid: str) -> Sandbox:
        sb = self.sandboxes.get(sid)
        if sb is None:
            raise SandboxError(NOT_FOUND, f"sandbox {sid} not found")
        return sb

    def lifecycle_lock(self, sid: str) -> asyncio.Lock:
        return self._lifecycle.setdefault(sid, asyncio.Lock())

    def object_lock(self, sid: str) -> asyncio.Lock:
        return self._objects.setdefault(sid, asyncio.Lock())

    def write(self, sb: Sandbox, origin: str, **fields: Any) -> None:
        """Set ``fields`` on every container of ``sb``, logged with its origin."""
        for c in sb.containers:
            for k, v in fields.items():
                setattr(c, k, v)
        self.writes.append(Write(time.monotonic(), sb.id, origin, dict(fields)))
        journal.emit(
            "reconciler", "write", id=sb.id, origin=origin, state=sb.state(), **_short(fields)
        )

    def write_labels(self, sb: Sandbox, origin: str, labels: dict[str, str]) -> None:
        sb.labels.update(labels)  # merge: unrelated labels are kept
        self.writes.append(Write(time.monotonic(), sb.id, origin, {"labels": dict(labels)}))
        journal.emit("reconciler", "write_labels", id=sb.id, origin=origin, labels=labels)

    def persist(self, sb: Sandbox, *, quiet: bool = False) -> None:
        """Write the record to sqlite; after a crash nothing is written (quiet: say nothing)."""
        try:
            self.store.save(sb)
        except StoreClosed:
            if not quiet:
                raise

    async def hook(self, name: str) -> None:
        """A named failpoint inside the reconciler (delay, hang until released, error)."""
        action = failpoints.point(name).evaluate()
        if action is not None:
            journal.emit("reconciler", "fault", point=name, action=action.kind)
            await action.apply_async()

    def exited(self, sid: str) -> None:
        self._exited.setdefault(sid, asyncio.Event()).set()

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self, *, recover: bool = False) -> SandboxReconciler:
        """Load records, start the loops, re-arm exit watchers (a restart when ``recover``)."""
        self.sandboxes = self.store.load_all()
        journal.emit(
            "reconciler",
            "started",
            generation=self.generation,
            bugs=sorted(self.bugs),
            sandboxes=sorted(self.sandboxes),
        )
        self._loops = [
            asyncio.ensure_future(events.run(self)),
            asyncio.ensure_future(self._ticker()),
            asyncio.ensure_future(deadgc.run(self)),
        ]
        await asyncio.wait_for(self.subscribed.wait(), 10)
        if recover:
            for sb in list(self.sandboxes.values()):
                if not sb.is_terminated() and not sb.user_mark_deleted_at:
                    self._watch(sb.id)
            # F4, F8: ask the shims about RUNNING and PAUSED records (a resume or a pause
            # may have finished while down)
            self._loops.append(asyncio.ensure_future(events.recheck_after_restart(self)))
        return self

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.timing.backoff_tick)
            await self.hook("sandbox.backoff.before_tick")
            await self.backoff.tick()

    def _watch(self, sid: str) -> None:
        self._watchers[sid] = asyncio.ensure_future(exits.watch(self, sid))

    async def crash(self) -> None:
        """kill -9: nothing more reaches the store, every task stops where it is."""
        self.crashed = True
        self.store.close()
        deletes = [f for f in self.deletes_inflight.values() if isinstance(f, asyncio.Task)]
        pending = {*self._loops, *self._watchers.values(), *self._ops, *self._rechecks, *deletes}
        # Cancel until every task has ended, not once: Python 3.11's ``wait_for`` can swallow
        # a cancel that lands as its inner call completes (the explorer saw a watcher go on
        # awaiting a task's Wait for 60 s after a kill -9 step), and a crash that waits on
        # such a task would hang the step.
        rounds = 0
        while pending:
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
            rounds += 1
        if rounds > 1:
            journal.emit("reconciler", "cancel_repeated", rounds=rounds)
        journal.emit("reconciler", "crashed", generation=self.generation)

    async def stop(self) -> None:
        """Graceful stop (the end of a test): same as a crash, the store already holds it all."""
        if not self.crashed:
            await self.crash()

    # -- the orchestrator's API -------------------------------------------------------------
    async def create(self, sid: str, annotations: dict[str, str] | None = None) -> Sandbox:
        """Create and start a sandbox; labels carry a prior snapshot binding to invalidate."""
        sb = Sandbox(
            sid,
            [ContainerStatus(sid, created_at=now_ns())],
            labels={
                LABEL_RUNTIME_SNAPSHOT: f"snap-{sid}-1",
                LABEL_RESTORE_SNAPSHOT: f"snap-{sid}-0",
            },
        )
        pid = await self.runtime.create(sid, self.runtime_name, annotations or {})
        # in the store only once its task runs (as Cubelet adds a cubebox after start):
        # a DeadGC pass during a slow create would otherwise probe a task that does not
        # exist yet, mark the sandbox unknown, and a later stop would find it "exited"
        self.sandboxes[sid] = sb
        self.incarnations[sid] = self.incarnations.get(sid, 0) + 1
        sb.shim_address = self.runtime.shim_address(sid)
        self.write(sb, "create", pid=pid, started_at=now_ns())
        self.persist(sb)
        self._watch(sid)
        return sb

    async def pause(self, sid: str, timeout: float | None = None) -> None:
        await self._op(pause.pause(self, sid, timeout))

    async def resume(self, sid: str, timeout: float | None = None) -> None:
        await self._op(pause.resume(self, sid, timeout))

    async def _op(self, coro: Any) -> Any:
        """Run a request as its own task, so ``crash()`` can cut it off mid-call."""
        task = asyncio.ensure_future(coro)
        self._ops.add(task)
        try:
            return await task
        finally:
            self._ops.discard(task)

    def note_change(self, sid: str, at_ns: int) -> None:
        """A pause/resume outcome learnt from an RPC (its reply, or the status query after
        its error) as of ``at_ns``: a pause event stamped before it is older news.

        Why: ``events._stale`` knew only the changes applied from events, so a
        ``/tasks/paused`` delayed past the Resume that followed it (latency on the shim's
        events leg) was applied over the Resume's reply: view PAUSED over a running shim
        for good once ``/tasks/resumed`` was lost (reconverge explore, F10:
        suites/regressions/f10-paused-event-after-resume-reply.json). The time is when the
        call was sent (or the query asked): conservative, a change the shim made during the
        call is not dropped.
        """
        self.last_change_ns[sid] = max(self.last_change_ns.get(sid, 0), at_ns)

    def recheck_later(self, sid: str, direction: str) -> None:
        """Owe the shim two more status queries after a Pause/Resume error (F9); quiescence
        waits for them (:meth:`busy`)."""
        task = asyncio.ensure_future(events.recheck_outcome(self, sid, direction))
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def stop_sandbox(self, sid: str, timeout: float) -> None:
        """StopPodSandbox: kill the task and wait until its exit was handled (bounded)."""
        sb = self.get(sid)
        if not sb.first.finished_at:
            try:
                await self.runtime.kill(sid, 9)
            except Exception as exc:
                journal.emit("reconciler", "kill_failed", id=sid, error=describe(exc))
        ev = self._exited.setdefault(sid, asyncio.Event())
        if sb.first.finished_at:
            return
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            raise SandboxError(
                STOP_FAILED, f"sandbox {sid} did not stop in {timeout:.1f}s"
            ) from None

    async def remove_sandbox(self, sid: str) -> None:
        """RemovePodSandbox: drop the record and the containerd container (must be stopped)."""
        sb = self.get(sid)
        if not sb.first.finished_at:
            # refused before the deletion mark: a marked sandbox is skipped by DeadGC and by
            # the restart's watcher re-arm, so a refused remove of a sandbox stuck PAUSING
            # kept it PAUSING for good (found by reconverge explore, suites/regressions/)
            raise SandboxError(STOP_FAILED, f"sandbox {sid} is not stopped")
        sb.user_mark_deleted_at = sb.user_mark_deleted_at or now_ns()
        with contextlib.suppress(Exception):
            await self.runtime.delete_container(sid)
        self.store.delete(sid)
        del self.sandboxes[sid]
        self.last_change_ns.pop(sid, None)
        w = self._watchers.pop(sid, None)
        if w is not None:
            w.cancel()
        journal.emit("reconciler", "removed", id=sid)

    # -- what checkers read --------------------------------------------------------------------
    def busy(self) -> dict[str, Any]:
        """Anything in flight or queued (quiescence needs all of it empty)."""
        out: dict[str, Any] = {}
        if self.runtime.inflight:
            out["rpc_in_flight"] = self.runtime.inflight
        if self.backoff.queues:
            out["backoff"] = self.backoff.depth()
        if self.deletes_inflight:
            out["deletes_in_flight"] = sorted(self.deletes_inflight)
        if any(not t.done() for t in self._ops):
            out["requests"] = sum(not t.done() for t in self._ops)
        if self._rechecks:  # status queries owed after a Pause/Resume error (F9)
            out["outcome_rechecks"] = len(self._rechecks)
        # cut off from containerd: an exit or an event may be owed (found by reconverge
        # explore, F7): quiescence is judged once the watchers and the stream are back
        if self.watch_unsure:
            out["exit_watch_unsure"] = sorted(self.watch_unsure)
        if self._loops and not self.subscribed.is_set():
            out["event_stream"] = "down"
        return out

    def view(self) -> dict[str, dict[str, Any]]:
        return {sid: sb.summary() for sid, sb in self.sandboxes.items()}


def _short(fields: dict[str, Any]) -> dict[str, Any]:
    """Journal-friendly field values (timestamps as 'set'/0)."""
    return {k: ("set" if isinstance(v, int) and v > 10**15 else v) for k, v in fields.items()}
