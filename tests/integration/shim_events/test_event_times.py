"""Event timestamps are the time of the state change, not the time the stub sent them.

runc's shim stamps an event when it publishes it, right as the change happens; a slow
event leg delivers it late but with its original time. The stub's publisher can delay an
event (``shim.publish.<topic>=delay``) and hold it back for another (``hold``): on the real
containerd 1.6.20, the subscriber must get the pause's and the exit's own time, well
before the moment the event was actually sent.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

import failpoints
from failpoints.sources import ANNOTATION_PREFIX
from harness.checks import leaks
from harness.journal import merge
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import ContainerdClient
from harness.wait import await_for

pytestmark = pytest.mark.needs("containerd")

FP = ANNOTATION_PREFIX
DELAY_MS = 1500
#: how late a stamp may be after the change it reports (scheduling on a busy machine)
SLACK_NS = 500_000_000


def test_a_delayed_pause_and_exit_keep_the_time_they_happened(
    containerd: Containerd, ctd_namespace: str, event_log: Any, remove_container: Any
) -> None:
    ns, cid = ctd_namespace, "stamped"
    annotations = {
        f"{FP}publish.tasks.paused": f"1*delay({DELAY_MS})",
        f"{FP}publish.tasks.exit": f"1*delay({DELAY_MS})",
    }

    async def main() -> dict[str, Any]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        got: dict[str, Any] = {}
        try:
            async with event_log(client) as log:
                await client.create_task(cid)
                await client.start(cid)
                got["pause_from"] = time.time_ns()
                await client.pause(cid, timeout=10)
                got["pause_to"] = time.time_ns()
                got["paused"] = await log.first(cid, "/tasks/paused")
                await client.resume(cid, timeout=10)
                got["kill_from"] = time.time_ns()
                await client.kill(cid, signal.SIGKILL)
                got["exit"] = await log.first(cid, "/tasks/exit")
                got["wait_status"] = await client.wait(cid, timeout=10)
        finally:
            await remove_container(client, cid)
        return got

    got = asyncio.run(main())
    paused, exit_ = got["paused"], got["exit"]
    # the pause applied between the call and its reply: that is the stamp
    assert got["pause_from"] <= paused.stamped_ns <= got["pause_to"], got
    # the event itself was held DELAY_MS by the failpoint: sent (and received) that much later
    assert paused.received_ns - paused.stamped_ns >= DELAY_MS * 1_000_000, got
    # the exit: envelope and exited_at are the reaping, not the send DELAY_MS later
    exited_at = exit_.event.exited_at.ToNanoseconds()
    assert got["kill_from"] <= exited_at <= got["kill_from"] + SLACK_NS, got
    assert exit_.stamped_ns == exited_at, got
    assert exit_.received_ns - exited_at >= DELAY_MS * 1_000_000, got
    assert exit_.event.exit_status == 137 == got["wait_status"], got


def test_hold_reorders_the_stubs_events_and_a_heal_gives_them_back(
    containerd: Containerd,
    ctd_namespace: str,
    reconverge_run: Any,
    event_log: Any,
    remove_container: Any,
) -> None:
    """``hold(tasks.resumed)`` on paused: containerd's subscriber sees resumed, then paused
    with its own (earlier) time; a second hold that never meets its trigger is given back by
    disabling the point on the live shim (the explorer's heal), journaled ``by=heal``."""
    ns, cid, run_dir = ctd_namespace, "held", reconverge_run.dir
    point = "shim.publish.tasks.paused"
    annotations = {f"{FP}publish.tasks.paused": "1*hold(tasks.resumed)->1*hold(tasks.delete)"}

    async def main() -> dict[str, Any]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        got: dict[str, Any] = {}
        try:
            async with event_log(client) as log:
                await client.create_task(cid)
                await client.start(cid)
                entry = leaks.registry_entry(run_dir, ns, cid)
                control = failpoints.ControlClient(f"unix:{entry['control']}")
                got["pause_from"] = time.time_ns()
                await client.pause(cid, timeout=10)
                got["pause_to"] = time.time_ns()
                held = await asyncio.to_thread(control.command, "info")
                got["held"] = held["held"]
                await client.resume(cid, timeout=10)
                await log.first(cid, "/tasks/paused")
                got["order"] = [
                    t for t in log.topics(cid) if t in ("/tasks/paused", "/tasks/resumed")
                ]
                got["first"] = {s.topic: s for s in log.of(cid)}
                # the second pause is held until a delete that never comes: heal it
                await client.pause(cid, timeout=10)
                await await_for(
                    lambda: asyncio.to_thread(control.command, "info"),
                    timeout=10,
                    what="the second paused event held",
                    accept=lambda i: bool(i["held"]),
                )
                got["before_heal"] = sum(t == "/tasks/paused" for t in log.topics(cid))
                t_heal = time.monotonic()
                await asyncio.to_thread(control.clear, point)
                await await_for(
                    lambda: asyncio.sleep(0, sum(t == "/tasks/paused" for t in log.topics(cid))),
                    timeout=10,
                    what="the held paused event given back by the heal",
                    accept=(2).__eq__,
                )
                got["healed"] = merge.find(
                    run_dir, after=t_heal, component="shim", event="hold_released", by="heal"
                )
                got["triggers"] = sum(
                    1
                    for r in merge.find(
                        run_dir,
                        after=0,
                        component="shim",
                        event="event_held",
                        topic="/tasks/paused",
                        container_id=cid,  # the run is shared with other tests' holds
                    )
                )
        finally:
            await remove_container(client, cid)
        return got

    got = asyncio.run(main())
    assert got["held"] == [["/tasks/paused", "tasks.resumed"]], got
    assert got["order"] == ["/tasks/resumed", "/tasks/paused"], got
    paused, resumed = got["first"]["/tasks/paused"], got["first"]["/tasks/resumed"]
    assert got["pause_from"] <= paused.stamped_ns <= got["pause_to"], got
    assert paused.stamped_ns < resumed.stamped_ns, "a held event keeps its original time"
    assert got["before_heal"] == 1 and len(got["healed"]) == 1, got
    assert got["triggers"] == 2, got
