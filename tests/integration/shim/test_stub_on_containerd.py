"""The stub shim under the real containerd 1.6.20, driven with ctr like a person would."""

from __future__ import annotations

import subprocess
import time

import pytest

from failpoints.sources import ANNOTATION_PREFIX
from harness import binaries
from harness.checks import leaks
from harness.providers.containerd import STUB_RUNTIME

pytestmark = pytest.mark.needs("containerd")

FP = ANNOTATION_PREFIX


def _run(containerd, ns: str, cid: str, *annotations: str) -> None:
    containerd.run_stub_task(ns, cid, *annotations)


def _events(containerd, ns: str) -> subprocess.Popen:
    ctr = binaries.require("ctr")
    return subprocess.Popen(
        [str(ctr), "--address", str(containerd.address), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_lifecycle_events_and_nothing_left(containerd, ctd_namespace, reconverge_run):
    ns, cid = ctd_namespace, "life"
    events = _events(containerd, ns)
    try:
        _run(containerd, ns, cid)
        assert containerd.task_status(ns, cid) == "RUNNING"
        containerd.ctr(ns, "task", "pause", cid)
        assert containerd.task_status(ns, cid) == "PAUSED"
        containerd.ctr(ns, "task", "resume", cid)
        assert containerd.task_status(ns, cid) == "RUNNING"
        containerd.remove_task(ns, cid)
        found = leaks.wait_until_clean(
            reconverge_run.dir, timeout=2.0, state_dir=containerd.state, namespace=ns
        )
        assert found == [], [str(f) for f in found]
    finally:
        events.terminate()
        out, _ = events.communicate(timeout=10)
    # "<date> <time> +0000 UTC <namespace> <topic> <event>"
    topics = [ln.split()[ln.split().index(ns) + 1] for ln in out.splitlines() if f" {ns} " in ln]
    expected = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ]
    assert [t for t in topics if t.startswith("/tasks/")] == expected, topics


def test_ignored_shutdown_error_leaks_the_shim(containerd, ctd_namespace, reconverge_run):
    """containerd#8981: 1.6.20 logs the Shutdown error, forgets the shim, deletes the bundle."""
    ns, cid = ctd_namespace, "leaky"
    _run(containerd, ns, cid, f"{FP}Shutdown=1*error(please retry)")
    containerd.remove_task(ns, cid)
    t0 = time.monotonic()
    found = leaks.find_leaks(reconverge_run.dir, state_dir=containerd.state, namespace=ns)
    assert time.monotonic() - t0 < 1.0
    assert [(f.kind, f.container_id) for f in found] == [("shim-process", cid)], found
    assert "answers Connect" in found[0].evidence
    assert not containerd.bundle(ns, cid).exists()
    assert "failed to shutdown shim task" in containerd.proc.log_tail(50)
    # what `ctr shim shutdown` would do: the failpoint fired once, so this Shutdown works
    _shutdown_directly(found[0].path, cid)


def _shutdown_directly(socket_path: str, cid: str) -> None:
    import asyncio

    from harness.protos import shim_task_pb2
    from harness.ttrpc import Client, Closed

    async def shutdown() -> None:
        client = await Client.connect(f"unix://{socket_path}")
        try:
            req = shim_task_pb2.ShutdownRequest(id=cid).SerializeToString()
            await client.call("containerd.task.v2.Task", "Shutdown", req, timeout=5)
        except Closed:
            pass
        finally:
            await client.close()

    asyncio.run(shutdown())


def test_without_the_failpoint_nothing_leaks(containerd, ctd_namespace, reconverge_run):
    ns, cid = ctd_namespace, "clean"
    _run(containerd, ns, cid)
    containerd.remove_task(ns, cid)
    found = leaks.wait_until_clean(
        reconverge_run.dir, timeout=1.0, state_dir=containerd.state, namespace=ns
    )
    assert found == [], [str(f) for f in found]


def test_duplicated_exit_event_reaches_subscribers_twice(containerd, ctd_namespace):
    ns, cid = ctd_namespace, "dup"
    events = _events(containerd, ns)
    try:
        _run(containerd, ns, cid, f"{FP}publish.tasks.exit=1*duplicate(1)")
        containerd.remove_task(ns, cid)
    finally:
        events.terminate()
        out, _ = events.communicate(timeout=10)
    exits = [line for line in out.splitlines() if f" {ns} " in line and "/tasks/exit" in line]
    assert len(exits) == 2, out


def test_leak_detector_sees_live_tasks_and_their_fifos(containerd, ctd_namespace, reconverge_run):
    """While a task lives it is a containerd-task finding (unless known); after delete: none.

    (containerd 1.6's task API leaves the stdio FIFOs to the shim, which the stub never
    opens, so no ``fifo`` finding shows here; CRI's log FIFOs are where containerd holds them.)
    """
    ns, cid = ctd_namespace, "withio"
    rootfs = containerd.dir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    fifo_dir = containerd.dir / "fifo"  # ctr's default is the system's /run/containerd/fifo
    containerd.ctr(
        ns, "run", "-d", "--fifo-dir", str(fifo_dir), "--runtime", STUB_RUNTIME,
        "--rootfs", str(rootfs), cid,
    )  # fmt: skip
    kwargs = dict(
        namespace=ns,
        containerd_address=containerd.address,
        containerd_pid=containerd.proc.pid,
    )
    kinds = {
        f.kind for f in leaks.find_leaks(reconverge_run.dir, **kwargs) if f.container_id == cid
    }
    assert kinds == {"containerd-task", "shim-process"}, kinds
    assert leaks.find_leaks(reconverge_run.dir, known_tasks={cid}, **kwargs) == []
    containerd.remove_task(ns, cid)
    assert leaks.wait_until_clean(reconverge_run.dir, timeout=1.0, **kwargs) == []
