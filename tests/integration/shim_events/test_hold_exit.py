"""``hold(tasks.delete)`` on the exit: containerd's subscribers get TaskDelete before TaskExit.

One task per shim, so an exit can only be held for an event of the same task that still
follows it: the delete. containerd 1.6.20 does not wait on the exit event to delete (its
Wait is the shim's RPC), so the delete goes through and the held exit arrives right after
it, with the time the exit was reaped.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from failpoints.sources import ANNOTATION_PREFIX
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import ContainerdClient

pytestmark = pytest.mark.needs("containerd")


def test_an_exit_held_until_the_delete_arrives_after_it(
    containerd: Containerd, ctd_namespace: str, event_log: Any, remove_container: Any
) -> None:
    ns, cid = ctd_namespace, "exit-after-delete"
    annotations = {f"{ANNOTATION_PREFIX}publish.tasks.exit": "1*hold(tasks.delete)"}

    async def main() -> dict[str, Any]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        got: dict[str, Any] = {}
        try:
            async with event_log(client) as log:
                await client.create_task(cid)
                await client.start(cid)
                got["kill_from"] = time.time_ns()
                await client.kill(cid, signal.SIGKILL)
                got["wait"] = await client.wait(cid, timeout=10)
                got["delete"] = await client.delete_task(cid, timeout=10)
                got["exit"] = await log.first(cid, "/tasks/exit")
                got["order"] = [t for t in log.topics(cid) if t in ("/tasks/exit", "/tasks/delete")]
        finally:
            await remove_container(client, cid)
        return got

    got = asyncio.run(main())
    assert got["wait"] == 137 == got["delete"], got
    assert got["order"][-2:] == ["/tasks/delete", "/tasks/exit"], got
    assert got["order"].count("/tasks/exit") == 1, got
    exited_at = got["exit"].event.exited_at.ToNanoseconds()
    assert got["exit"].stamped_ns == exited_at >= got["kill_from"], got
