"""Deleting a task id and creating it again at once: the old shim must not take the new one's
files with it.

Why: every stub path is named by (containerd address, namespace, id), so a re-created id's
new daemon serves on the very socket path the previous daemon of that id is still leaving.
An exiting daemon that removed its files unconditionally removed the *new* daemon's socket
(``State`` then got FileNotFoundError), and a ``start`` that found the old daemon still
listening handed containerd its address ("ttrpc: closed"). Under the real containerd 1.6.20:
create, delete, create again, many times, each new shim checked after the old one is gone.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from harness.checks import leaks
from harness.errors import ReconvergeError
from harness.protos import shim_task_pb2, task_types_pb2
from harness.providers.containerd import Containerd
from harness.shim import identity
from harness.ttrpc import Client
from harness.wait import TooSlow, wait_for

pytestmark = pytest.mark.needs("containerd")

ROUNDS = 15
STATUS = {v: k for k, v in task_types_pb2.Status.items()}


async def _state(socket_path: str, cid: str) -> str:
    """``State`` asked on the shim's own socket (what the explorer does), as a status name."""
    client = await Client.connect(f"unix://{socket_path}", timeout=5.0)
    try:
        req = shim_task_pb2.StateRequest(id=cid).SerializeToString()
        raw = await client.call("containerd.task.v2.Task", "State", req, timeout=5.0)
        return STATUS[shim_task_pb2.StateResponse.FromString(raw).status]
    finally:
        await client.close()


def _entry_of_new_daemon(run_dir: Any, ns: str, cid: str, old_pid: int) -> dict[str, Any]:
    """The registry entry of the daemon serving ``cid`` now (not ``old_pid``'s)."""
    return wait_for(
        lambda: leaks.registry_entry(run_dir, ns, cid),
        timeout=10.0,
        what=f"a registry entry for {cid} of a daemon other than {old_pid}",
        accept=lambda e: bool(e) and int(e.get("pid") or 0) not in (0, old_pid),
    )


def _round(containerd: Containerd, run_dir: Any, ns: str, cid: str, old_pid: int) -> int:
    """Create ``cid``, check its shim once ``old_pid`` has exited, delete it; the new pid."""
    containerd.run_stub_task(ns, cid)
    entry = _entry_of_new_daemon(run_dir, ns, cid, old_pid)
    if old_pid:
        wait_for(
            lambda: not identity.is_stub(old_pid),
            timeout=15.0,
            what=f"the previous daemon {old_pid} of {cid} exited",
        )
    missing = [p for p in (entry["socket"], entry["control"]) if not os.path.exists(p)]
    assert missing == [], f"the exit of daemon {old_pid} removed {missing} of {entry['pid']}"
    after = leaks.registry_entry(run_dir, ns, cid)
    assert after.get("pid") == entry["pid"], f"registry entry after the old exit: {after}"
    assert asyncio.run(_state(entry["socket"], cid)) == "RUNNING"
    containerd.remove_task(ns, cid)
    return int(entry["pid"])


def test_recreating_an_id_keeps_the_new_shims_files(
    containerd: Containerd, ctd_namespace: str, reconverge_run: Any
) -> None:
    ns, cid, run_dir = ctd_namespace, "again", reconverge_run.dir
    failures: list[str] = []
    old_pid = 0
    for i in range(ROUNDS):
        try:
            old_pid = _round(containerd, run_dir, ns, cid, old_pid)
        except (AssertionError, ReconvergeError, TooSlow, OSError) as exc:
            failures.append(f"round {i}: {type(exc).__name__}: {str(exc)[:300]}")
            old_pid = int(leaks.registry_entry(run_dir, ns, cid).get("pid") or 0)
            _remove_whatever_is_left(containerd, ns, cid)
    assert failures == [], f"{len(failures)} of {ROUNDS} re-creates failed:\n" + "\n".join(failures)


def _remove_whatever_is_left(containerd: Containerd, ns: str, cid: str) -> None:
    """After a failed round: the task and the container, whichever exist, so the next round
    starts from a free id."""
    try:
        containerd.ctr(ns, "task", "kill", "-s", "SIGKILL", cid)
    except ReconvergeError:
        pass
    try:
        wait_for(
            lambda: containerd.task_status(ns, cid),
            timeout=10.0,
            what=f"{cid} stopped or gone",
            accept=lambda s: s in ("STOPPED", "ABSENT"),
        )
    except TooSlow:
        pass
    for args in (("task", "delete", "--force", cid), ("container", "delete", cid)):
        try:
            containerd.ctr(ns, *args)
        except ReconvergeError:
            pass
