"""containerd → shim through toxiproxy: a reset mid-Pause, and what each side ends up with.

The container carries ``io.reconverge.stub.toxiproxy``, so the stub serves containerd
through a per-shim proxy (``harness/shim/relay.py``). Once the stub has paused the task (its
Pause reply held by a failpoint), a reset_peer toxic cuts containerd's connection:

- containerd 1.6.20 fails the Pause with ``ttrpc: closed``, treats the shim as dead
  (``cleanupAfterDeadShim``: runs ``delete``, publishes exit/delete, forgets the task);
- the stub lives on with its task PAUSED: a shim containerd no longer knows — the leak
  detector reports it. A connection blip alone is enough to leak a shim on 1.6.20.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess

import pytest

from harness import binaries
from harness.checks import leaks
from harness.protos import shim_task_pb2, task_types_pb2
from harness.providers.containerd import STUB_RUNTIME
from harness.shim.relay import ANNOTATION_TOXIPROXY
from harness.ttrpc import Client
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd", "toxiproxy")

FP = "io.containerd.runtime.v2.shim.failpoint."
TASK = "containerd.task.v2.Task"
STATUS = {v: k for k, v in task_types_pb2.Status.items()}


def _entry(run_dir, ns: str, cid: str) -> dict:
    for e in leaks.registry(run_dir):
        if e.get("namespace") == ns and e.get("id") == cid:
            return e
    return {}


async def _direct(entry: dict, method: str, msg, resp_cls=None, timeout: float = 5.0):
    client = await Client.connect(entry["direct"], timeout=timeout)
    try:
        raw = await client.call(TASK, method, msg.SerializeToString(), timeout=timeout)
        return resp_cls.FromString(raw) if resp_cls else raw
    finally:
        await client.close()


def _state(entry: dict, cid: str) -> str:
    resp = asyncio.run(
        _direct(entry, "State", shim_task_pb2.StateRequest(id=cid), shim_task_pb2.StateResponse)
    )
    return STATUS.get(resp.status, "UNKNOWN")


def _tasks(containerd, ns: str) -> list[str]:
    return [ln.split()[0] for ln in containerd.ctr(ns, "task", "ls").splitlines()[1:] if ln.split()]


def test_reset_mid_pause_leaves_a_paused_shim_containerd_forgot(
    containerd, ctd_namespace, toxiproxy_server, reconverge_run
):
    ns, cid = ctd_namespace, "relayed"
    rootfs = containerd.dir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    containerd.ctr(
        ns,
        "run",
        "-d",
        "--null-io",
        "--runtime",
        STUB_RUNTIME,
        "--annotation",
        f"{ANNOTATION_TOXIPROXY}={toxiproxy_server.api}",
        "--annotation",
        f"{FP}Pause.after=1*delay(3000)",
        "--rootfs",
        str(rootfs),
        cid,
    )
    entry = _entry(reconverge_run.dir, ns, cid)
    assert entry.get("proxy") and entry.get("direct", "").startswith("tcp://127.0.0.1:"), entry
    proxy = toxiproxy_server.client.get(entry["proxy"])
    try:
        ctr = binaries.require("ctr")
        pause = subprocess.Popen(
            [str(ctr), "--address", str(containerd.address), "-n", ns, "task", "pause", cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: _state(entry, cid), timeout=5, what="stub paused", accept="PAUSED".__eq__)
        proxy.add_toxic("reset_peer", name="cut", timeout=0)
        _, err = pause.communicate(timeout=15)
        assert pause.returncode != 0 and "ttrpc: closed" in err, err
        # containerd: the shim is dead to it; the task is gone from its list
        wait_for(
            lambda: _tasks(containerd, ns),
            timeout=10,
            what="containerd forgets the task",
            accept=lambda ts: cid not in ts,
        )
        # the stub: alive, its task still PAUSED, reachable on the direct endpoint only
        assert _state(entry, cid) == "PAUSED"
        found = leaks.find_leaks(reconverge_run.dir, namespace=ns)
        assert [(f.kind, f.container_id) for f in found if f.kind == "shim-process"] == [
            ("shim-process", cid)
        ], [str(f) for f in found]
    finally:
        # tear the stub down over its direct endpoint: kill, delete, shutdown
        async def teardown() -> None:
            for method, msg in (
                ("Kill", shim_task_pb2.KillRequest(id=cid, signal=9)),
                ("Wait", shim_task_pb2.WaitRequest(id=cid)),  # returns once reaped
                ("Delete", shim_task_pb2.DeleteRequest(id=cid)),
                ("Shutdown", shim_task_pb2.ShutdownRequest(id=cid)),
            ):
                with contextlib.suppress(Exception):
                    await _direct(entry, method, msg)

        asyncio.run(teardown())
        wait_for(
            lambda: leaks.find_leaks(reconverge_run.dir, namespace=ns),
            timeout=5,
            what="stub gone after direct shutdown",
            accept=lambda f: not [x for x in f if x.kind == "shim-process"],
        )
        with contextlib.suppress(Exception):
            containerd.ctr(ns, "container", "delete", cid)
    assert json.dumps(entry)  # the registry entry is plain JSON (for the janitor)


@pytest.fixture(scope="module")
def ttrpc_relay(containerd) -> str:
    """containerd's ttrpc socket on 127.0.0.1 (socat), for proxies on the events leg."""
    return containerd.tcp_relay("ttrpc")


def test_events_leg_latency_delays_paused_event(containerd, ctd_namespace, toxiproxy, ttrpc_relay):
    """shim -> containerd through toxiproxy: a latency toxic holds /tasks/paused back."""
    from harness.checks.sandbox import EventRecorder
    from harness.shim.relay import ANNOTATION_EVENTS_ADDRESS

    ns, cid = ctd_namespace, "evleg"
    proxy = toxiproxy.create("events", ttrpc_relay)
    rootfs = containerd.dir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    with EventRecorder(containerd.address, ns) as rec:
        containerd.ctr(
            ns,
            "run",
            "-d",
            "--null-io",
            "--runtime",
            STUB_RUNTIME,
            "--annotation",
            f"{ANNOTATION_EVENTS_ADDRESS}=tcp://{proxy.listen}",
            "--rootfs",
            str(rootfs),
            cid,
        )
        wait_for(
            lambda: [t for t, i in rec.seen if i == cid],
            timeout=10,
            what="/tasks/start through the events proxy",
            accept=lambda ts: "/tasks/start" in ts,
        )
        proxy.add_toxic("latency", name="slow", stream="upstream", latency=1500, jitter=0)
        containerd.ctr(ns, "task", "pause", cid)
        before = rec.barrier()  # published straight to containerd, not through the proxy
        assert ("/tasks/paused", cid) not in before, before
        wait_for(
            lambda: [t for t, i in rec.seen if i == cid],
            timeout=10,
            what="/tasks/paused after the latency",
            accept=lambda ts: "/tasks/paused" in ts,
        )
        order = [t for t, i in rec.seen if i == cid or t == EventRecorder.BARRIER]
        assert order.index(EventRecorder.BARRIER) < order.index("/tasks/paused"), order
        proxy.remove_toxic("slow")
        containerd.remove_task(ns, cid)
