"""The stub's ``State`` waits on the task lock ``Pause``/``Resume`` hold, like runc's.

runc's shim takes the init process's mutex in ``Pause``/``Resume`` (while runc freezes or
thaws the cgroup) and in ``Status``, so a ``State`` that arrives during a slow freeze waits
for it and then reports the new state. The stub's ``shim.<Pause|Resume>.locked`` failpoint
is that slow freeze; ``.before`` (the request in transit) is outside the lock, so ``State``
answers at once there. Under the real containerd 1.6.20, ``State`` asked on the shim's own
socket while containerd's ``Pause``/``Resume`` is in flight.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from failpoints.sources import ANNOTATION_PREFIX
from harness.checks import leaks
from harness.journal import merge
from harness.protos import shim_task_pb2, task_types_pb2
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import ContainerdClient
from harness.ttrpc import Client
from harness.wait import await_for

pytestmark = pytest.mark.needs("containerd")

FP = ANNOTATION_PREFIX
STATUS = {v: k for k, v in task_types_pb2.Status.items()}
FREEZE_MS = 1500


async def _shim_state(entry: dict[str, Any], cid: str) -> tuple[str, float]:
    """(status, seconds it took) of ``State`` on the shim's own socket."""
    client = await Client.connect(f"unix://{entry['socket']}", timeout=5.0)
    t0 = time.monotonic()
    try:
        req = shim_task_pb2.StateRequest(id=cid).SerializeToString()
        raw = await client.call("containerd.task.v2.Task", "State", req, timeout=10.0)
        return STATUS[shim_task_pb2.StateResponse.FromString(raw).status], time.monotonic() - t0
    finally:
        await client.close()


async def _journaled(run_dir: Any, after: float, **match: Any) -> None:
    await await_for(
        lambda: asyncio.to_thread(merge.find, run_dir, after=after, **match),
        timeout=10,
        what=f"journal {match}",
    )


def test_state_waits_for_a_slow_pause_not_for_a_request_in_transit(
    containerd: Containerd, ctd_namespace: str, reconverge_run: Any
) -> None:
    ns, cid, run_dir = ctd_namespace, "locked", reconverge_run.dir
    annotations = {
        f"{FP}Pause.locked": f"1*delay({FREEZE_MS})",  # a slow freeze: holds the lock
        f"{FP}Resume.before": f"1*delay({FREEZE_MS})",  # a slow request: does not
    }

    async def main() -> dict[str, Any]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        seen: dict[str, Any] = {}
        try:
            await client.create_task(cid)
            await client.start(cid)
            entry = leaks.registry_entry(run_dir, ns, cid)
            t0 = time.monotonic()
            pausing = asyncio.ensure_future(client.pause(cid, timeout=10))
            await _journaled(
                run_dir, t0, component="shim", event="fault", point="shim.Pause.locked"
            )
            seen["during pause"] = await _shim_state(entry, cid)
            await pausing
            t1 = time.monotonic()
            resuming = asyncio.ensure_future(client.resume(cid, timeout=10))
            await _journaled(run_dir, t1, component="shim", event="request", method="Resume")
            seen["during resume.before"] = await _shim_state(entry, cid)
            await resuming
            seen["after resume"] = await _shim_state(entry, cid)
            await client.kill(cid)
            await client.wait(cid, timeout=10)
            await client.delete_task(cid)
        finally:
            await client.delete_container(cid)
            await client.close()
        return seen

    t0 = time.monotonic()
    seen = asyncio.run(main())
    status, waited = seen["during pause"]
    # State arrived while Pause was still applying (journal order), the task RUNNING then;
    # it answered PAUSED: it waited for the freeze to finish
    records = [r for r in merge.since(merge.load(run_dir), t0) if r.component == "shim"]
    freeze = next(r for r in records if r.event == "fault" and r.fields["point"].endswith("locked"))
    first_state = next(
        r
        for r in records
        if r.event == "request" and r.fields["method"] == "State" and r.mono > freeze.mono
    )
    pause_reply = next(r for r in records if r.event == "reply" and r.fields["method"] == "Pause")
    assert first_state.mono < pause_reply.mono, (first_state, pause_reply)
    assert status == "PAUSED", seen
    status, waited = seen["during resume.before"]
    assert status == "PAUSED" and waited < FREEZE_MS / 1000 / 2, seen
    assert seen["after resume"][0] == "RUNNING", seen
