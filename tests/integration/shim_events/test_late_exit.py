"""A late TaskExit of an earlier incarnation of the same id, published by the live shim.

The sandbox is deleted and created again under the same id: a new stub daemon (same shim
key) serves the new task, and ``late_exit`` makes it publish ``/tasks/exit`` with the
*previous* task's pid and exit time — the late exit a reconciler must not apply to the new
task. On the real containerd 1.6.20 the subscriber receives it with the old pid while the
new task keeps running.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from harness.checks import leaks
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import ContainerdClient
from harness.shim import control as shim_control
from harness.wait import await_for

pytestmark = pytest.mark.needs("containerd")


def _entry(run_dir: Any, ns: str, cid: str) -> dict[str, Any]:
    entry = leaks.registry_entry(run_dir, ns, cid)
    assert entry, f"no live registry entry for {cid}"
    return entry


def test_the_live_shim_publishes_the_exit_of_the_previous_incarnation(
    containerd: Containerd,
    ctd_namespace: str,
    reconverge_run: Any,
    event_log: Any,
    remove_container: Any,
) -> None:
    ns, cid, run_dir = ctd_namespace, "reborn", reconverge_run.dir

    async def main() -> dict[str, Any]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME)
        got: dict[str, Any] = {}
        try:
            async with event_log(client) as log:
                got["pid1"] = await client.create_task(cid)
                await client.start(cid)
                await client.kill(cid, signal.SIGKILL)
                await client.wait(cid, timeout=10)
                # what the explorer records while the first shim is still there
                entry1 = _entry(run_dir, ns, cid)
                got["info1"] = await asyncio.to_thread(shim_control.info, entry1)
                got["exit1"] = await log.first(cid, "/tasks/exit")
                await client.delete_task(cid)
                await await_for(  # the first daemon is gone with its registry entry
                    lambda: asyncio.to_thread(leaks.registry_entry, run_dir, ns, cid),
                    timeout=10,
                    what="the first shim gone",
                    accept=lambda e: not e,
                )
                # readable from disk with no shim alive
                got["on_disk"] = shim_control.incarnations(
                    run_dir, entry1["containerd_address"], ns, cid
                )
                got["pid2"] = await client.create_task(cid)
                await client.start(cid)
                entry2 = _entry(run_dir, ns, cid)
                got["info2"] = await asyncio.to_thread(shim_control.info, entry2)
                got["sent"] = await asyncio.to_thread(shim_control.late_exit, entry2)
                late = await log.first(
                    cid,
                    "/tasks/exit",
                    lambda s: s.event.pid == got["pid1"] and s is not got["exit1"],
                )
                got["late"] = late
                got["status_after"] = await client.status(cid)
                # explicit fields (what a caller recorded itself) go through the same path
                got["sent2"] = await asyncio.to_thread(
                    lambda: shim_control.late_exit(
                        entry2, pid=4321, exited_at_ns=late.stamped_ns - 1, exit_status=3
                    )
                )
                got["late2"] = await log.first(cid, "/tasks/exit", lambda s: s.event.pid == 4321)
        finally:
            await remove_container(client, cid)
        return got

    got = asyncio.run(main())
    pid1, pid2 = got["pid1"], got["pid2"]
    assert pid1 != pid2, got
    t1 = got["info1"]["tasks"][cid]
    assert (t1["pid"], t1["incarnation"], t1["state"]) == (pid1, 1, "stopped"), got["info1"]
    exited1 = t1["exited_ns"]
    assert exited1 == got["exit1"].event.exited_at.ToNanoseconds(), got
    assert [(i["pid"], i["exited_ns"]) for i in got["on_disk"]] == [(pid1, exited1)], got
    incs = got["info2"]["incarnations"][cid]
    assert [(i["incarnation"], i["pid"]) for i in incs] == [(1, pid1), (2, pid2)], incs
    assert incs[0]["exited_ns"] == exited1 and incs[1]["exited_ns"] == 0, incs
    late = got["late"]
    assert got["sent"] == {"id": cid, "pid": pid1, "exited_at_ns": exited1, "exit_status": 137}
    assert (late.event.container_id, late.event.pid, late.event.exit_status) == (cid, pid1, 137)
    assert late.event.exited_at.ToNanoseconds() == exited1 == late.stamped_ns, got
    assert got["status_after"] == "RUNNING", got  # containerd's task is the new one, alive
    assert got["late2"].event.exit_status == 3, got
