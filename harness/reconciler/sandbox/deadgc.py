"""DeadGC: the periodic backstop for what neither RPCs nor events repaired (§1.6, §4.3.6).

PAUSED is legitimate and skipped; PAUSING younger than the threshold is a pause in
progress and skipped, older is reconciled from the shim's status (PR #404). Every other
live sandbox is probed. Upstream's RecoverContainer marks a sandbox whose probe failed
unknown, which is why probing a *pausing* shim (its lock held, its state() timing out) is
harmful; the fixed reconciler reads a probe that got no answer as "not observed" and asks
again on a later pass (found by reconverge explore, F1).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from harness import journal
from harness.reconciler.sandbox import bugs
from harness.reconciler.sandbox.pause import converge_pause
from harness.reconciler.sandbox.record import PAUSED, PAUSING, Sandbox, now_ns
from harness.reconciler.sandbox.runtime import describe

if TYPE_CHECKING:
    from harness.reconciler.sandbox.reconciler import SandboxReconciler


async def run(rec: SandboxReconciler) -> None:
    while True:
        await asyncio.sleep(rec.timing.deadgc_tick)
        await tick(rec)


async def tick(rec: SandboxReconciler) -> None:
    rec.deadgc_ticks += 1
    for sb in list(rec.sandboxes.values()):
        if sb.rolling_back or sb.user_mark_deleted_at or sb.is_terminated():
            continue
        state = sb.state()
        if state == PAUSED:
            continue
        if state == PAUSING and not rec.bug(bugs.DEADGC_PROBES_PAUSING):
            # seed a, CubeSandbox #108 (86c4c440): never probe a pausing sandbox
            age = (now_ns() - sb.first.pausing_at) / 1e9
            if age < rec.timing.pausing_stuck_threshold:
                continue
            # seed a, CubeSandbox 7b6ad491 skipped every IsPaused sandbox, PAUSING forever
            # included; 32a30f5c reconciles one stuck past the threshold from the shim
            if rec.bug(bugs.DEADGC_SKIPS_STUCK_PAUSING):
                continue
            await reconcile_stuck_pausing(rec, sb, age)  # seed a fix 32a30f5c
            continue
        await probe(rec, sb)


async def reconcile_stuck_pausing(rec: SandboxReconciler, sb: Sandbox, age: float) -> None:
    try:
        status = await rec.runtime.status(sb.id, timeout=rec.timing.reconcile_query)
    except Exception as exc:
        journal.emit("reconciler", "deadgc_query_failed", id=sb.id, error=describe(exc))
        return
    async with rec.object_lock(sb.id):
        converge_pause(rec, sb, status, "deadgc", f"DeadGC stuck PAUSING for {age:.1f}s")
        rec.persist(sb)


async def probe(rec: SandboxReconciler, sb: Sandbox) -> None:
    """Ask the task's status (its own deadline); a probe that got no answer writes nothing.

    Why not "unknown": a status query that timed out or could not connect says nothing
    about the task — under 300 ms of latency a healthy sandbox's probe outlived its
    deadline and was marked unknown and exited (reconverge explore, F1:
    suites/regressions/deadgc-unknown-under-latency.json). The record stays as it is and
    the next pass asks again with a fresh deadline. NotFound (the task is gone) writes
    nothing either: the exit watcher, or its backoff replay, owns that exit (a restart
    re-arms the watchers), and a second writer of ``finished_at`` is what seed b removed.
    """
    t0 = time.monotonic()
    try:
        await rec.runtime.status(sb.id, timeout=rec.timing.reconcile_query)
    except Exception as exc:
        journal.emit(
            "reconciler",
            "deadgc_probe_failed",
            id=sb.id,
            error=describe(exc),
            ms=round((time.monotonic() - t0) * 1000),
        )
        if rec.bug(bugs.DEADGC_UNKNOWN_ON_FAILED_PROBE):
            # seed a, CubeSandbox RecoverContainer (every release the reference models, the
            # pre-#108 DeadGC included): a status that cannot be loaded marks the sandbox
            # unknown and exited, whatever the reason the query failed
            async with rec.object_lock(sb.id):
                rec.write(sb, "probe", unknown=True, finished_at=now_ns())
                rec.persist(sb)
