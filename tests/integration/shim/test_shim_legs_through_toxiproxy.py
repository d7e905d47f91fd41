"""toxiproxy on both legs of the stub shim, under the real containerd 1.6.20.

- **containerd → shim**: the container carries ``io.reconverge.stub.toxiproxy``; the stub
  serves the socket containerd dials as a relay through its own proxy ``shim-<key>``
  (``harness/shim/relay.py``), and stays reachable on its *direct* endpoint (registry).
- **shim → containerd** (events): the container carries
  ``io.reconverge.stub.events_address=tcp://<proxy>``, a proxy in front of
  ``Containerd.tcp_relay("ttrpc")``.

Every fault lands on a condition, never on a timer: the Pause reply is held by a ``hang``
failpoint until the toxic is in place, and an event is known to be held back only once a
barrier published after it has been delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import grpc
import pytest

import failpoints
from failpoints.sources import ANNOTATION_PREFIX
from harness import journal
from harness.checks import leaks
from harness.journal import merge
from harness.protos import events_pb2, shim_task_pb2, task_types_pb2
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import ContainerdClient
from harness.providers.toxiproxy import ToxiproxyServer
from harness.shim import identity
from harness.shim.relay import (
    ANNOTATION_EVENTS_ADDRESS,
    ANNOTATION_TOXIPROXY,
    ENV_TOXIPROXY,
    toxiproxy_api,
)
from harness.ttrpc import Client
from harness.wait import await_for

pytestmark = pytest.mark.needs("containerd", "toxiproxy", "socat")

FP = ANNOTATION_PREFIX
TASK = "containerd.task.v2.Task"
STATUS = {v: k for k, v in task_types_pb2.Status.items()}


def _entry(run_dir: Any, ns: str, cid: str) -> dict[str, Any]:
    """The stub's registry entry (proxy name, direct endpoint, control socket…)."""
    return leaks.registry_entry(run_dir, ns, cid)


async def _direct(entry: dict[str, Any], method: str, msg: Any, resp_cls: Any = None) -> Any:
    """One task API call on the stub's direct endpoint: around the proxy, not through it."""
    client = await Client.connect(entry["direct"], timeout=5.0)
    try:
        raw = await client.call(TASK, method, msg.SerializeToString(), timeout=5.0)
        return resp_cls.FromString(raw) if resp_cls else raw
    finally:
        await client.close()


async def _stub_state(entry: dict[str, Any], cid: str) -> str:
    req = shim_task_pb2.StateRequest(id=cid)
    resp = await _direct(entry, "State", req, shim_task_pb2.StateResponse)
    return STATUS.get(resp.status, "UNKNOWN")


async def _tear_down_directly(entry: dict[str, Any], cid: str) -> None:
    """What containerd no longer does for a shim it forgot: kill, reap, delete, shutdown."""
    for method, msg in (
        ("Kill", shim_task_pb2.KillRequest(id=cid, signal=9)),
        ("Wait", shim_task_pb2.WaitRequest(id=cid)),  # returns once the task is reaped
        ("Delete", shim_task_pb2.DeleteRequest(id=cid)),
        ("Shutdown", shim_task_pb2.ShutdownRequest(id=cid)),
    ):
        with contextlib.suppress(Exception):  # Shutdown's reply may lose the race to exit
            await _direct(entry, method, msg)


async def _get(client: ContainerdClient, cid: str) -> tuple[str, str]:
    """containerd's ``Tasks.Get``: (status name, "") or (gRPC code name, details)."""
    try:
        return await client.status(cid), ""
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details() or ""


class Subscriber:
    """containerd's event stream for one namespace, with exit statuses, and barriers.

    Every event seen is journaled (``test``/``event_seen``) so the merged journal shows
    when the subscriber got it relative to toxics and the stub's own records.
    """

    BARRIER = "/reconverge/barrier"

    def __init__(self, client: ContainerdClient) -> None:
        self.client = client
        self.seen: list[tuple[str, str, int | None]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.ensure_future(self._consume())
        await self.barrier()  # subscribed before the case acts
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task

    async def _consume(self) -> None:
        async for env in self.client.subscribe(f"namespace=={self.client.namespace}"):
            cid = str(getattr(env.event, "container_id", "") or "")
            status = getattr(env.event, "exit_status", None) if env.event is not None else None
            self.seen.append((env.topic, cid, status))
            journal.emit("test", "event_seen", topic=env.topic, container_id=cid)

    def topics(self, cid: str) -> list[str]:
        return [t for t, i, _ in self.seen if i == cid]

    async def barrier(self) -> list[tuple[str, str, int | None]]:
        """Events delivered before a marker published now (delivery is asynchronous)."""
        marker = f"barrier-{time.monotonic_ns()}"

        async def publish_and_look() -> bool:
            await self.client.publish(self.BARRIER, events_pb2.TaskPaused(container_id=marker))
            return any(i == marker for _, i, _ in self.seen)

        await await_for(publish_and_look, timeout=10, what="barrier delivered", interval=0.05)
        return self.seen[: next(n for n, (_, i, _) in enumerate(self.seen) if i == marker)]


def _stub_records(run_dir: Any, pid: int, event: str) -> list[journal.Record]:
    return [r for r in merge.load(run_dir) if r.pid == pid and r.event == event]


def test_reset_mid_pause_containerd_forgets_a_paused_shim(
    containerd: Containerd,
    ctd_namespace: str,
    toxiproxy_server: ToxiproxyServer,
    reconverge_run: Any,
) -> None:
    """A reset_peer on containerd → shim while Pause's reply is on its way.

    The stub applies the Pause, its reply is held (``Pause.after=1*hang``) until a
    reset_peer toxic is on the proxy, then released: the reply's bytes trigger the reset, so
    they never reach containerd. What containerd 1.6.20 then does (observed, asserted):

    - the client's ``Tasks.Pause`` fails with gRPC ``UNKNOWN`` "ttrpc: closed: unknown";
    - ``Tasks.Get`` answers ``NOT_FOUND`` at once — "not found" while the dead-shim clean-up
      runs (the shim's State on a closed client maps to NotFound), then "task <id> not
      found" — and never anything else: containerd does **not** reconnect (the relay sees
      one connection, ever); it runs the ``delete`` subcommand (which, like runc's, leaves
      the daemon alone) and publishes ``/tasks/exit`` (exit 137, from delete's output) and
      ``/tasks/delete`` itself;
    - the stub lives on, its task PAUSED, its journal saying it answered Pause ``ok``: a
      shim containerd no longer knows, found by the leak detector. A connection blip alone
      leaks a shim on 1.6.20.
    """
    ns, cid = ctd_namespace, "relayed"
    annotations = {ANNOTATION_TOXIPROXY: toxiproxy_server.api, f"{FP}Pause.after": "1*hang"}
    seen: dict[str, Any] = {}

    async def main() -> None:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        entry: dict[str, Any] = {}
        try:
            async with Subscriber(client) as sub:
                await client.create_task(cid)
                await client.start(cid)
                entry.update(_entry(reconverge_run.dir, ns, cid))
                assert entry.get("direct", "").startswith("tcp://127.0.0.1:"), entry
                assert entry["proxy"] in toxiproxy_server.client.names(), entry
                proxy = toxiproxy_server.client.get(entry["proxy"])

                pause = asyncio.ensure_future(client.pause(cid, timeout=30))
                await await_for(
                    lambda: _stub_state(entry, cid),
                    timeout=10,
                    what="the stub applied the Pause (asked on its direct endpoint)",
                    accept="PAUSED".__eq__,
                )
                assert not pause.done(), "the Pause reply is held by the hang failpoint"
                # reset_peer acts on the next bytes downstream: the held reply itself
                proxy.add_toxic("reset_peer", name="cut", stream="downstream", timeout=0)
                failpoints.ControlClient(f"unix:{entry['control']}").release("shim.Pause.after")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await pause
                seen["pause"] = (err.value.code().name, err.value.details())
                seen["first_get"] = await _get(client, cid)
                seen["final_get"] = await await_for(
                    lambda: _get(client, cid),
                    timeout=10,
                    what="containerd's Tasks.Get after its dead-shim clean-up",
                    accept=lambda g: g == ("NOT_FOUND", f"task {cid} not found"),
                )
                seen["events"] = [(t, s) for t, i, s in await sub.barrier() if i == cid]
                seen["list"] = await client.list_tasks()
                seen["stub"] = await _stub_state(entry, cid)
                seen["relay_opens"] = len(
                    _stub_records(reconverge_run.dir, entry["pid"], "relay_open")
                )
                seen["leaks"] = [
                    (f.kind, f.container_id)
                    for f in leaks.find_leaks(reconverge_run.dir, namespace=ns)
                ]
        finally:
            if entry:
                with contextlib.suppress(Exception):
                    toxiproxy_server.client.get(entry["proxy"]).clear()
                await _tear_down_directly(entry, cid)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.delete_container(cid)
            await client.close()
        seen["proxy_after_exit"] = await await_for(
            lambda: asyncio.to_thread(toxiproxy_server.client.names),
            timeout=10,
            what="the stub deleted its proxy when it exited",
            accept=lambda names: entry["proxy"] not in names,
        )
        seen["replies"] = [
            r.fields.get("outcome")
            for r in _stub_records(reconverge_run.dir, entry["pid"], "reply")
            if r.fields.get("method") == "Pause"
        ]

    asyncio.run(main())
    assert seen["pause"] == ("UNKNOWN", "ttrpc: closed: unknown"), seen
    assert seen["first_get"] in (
        ("NOT_FOUND", "not found"),
        ("NOT_FOUND", f"task {cid} not found"),
    ), seen
    assert seen["events"] == [
        ("/tasks/create", None),
        ("/tasks/start", None),
        ("/tasks/paused", None),
        ("/tasks/exit", 137),
        ("/tasks/delete", 137),
    ], seen
    assert seen["list"] == {}, seen
    assert seen["stub"] == "PAUSED", seen
    assert seen["relay_opens"] == 1, seen  # containerd never dialled the shim again
    assert ("shim-process", cid) in seen["leaks"], seen
    assert seen["replies"] == ["ok"], seen  # the stub believes it answered


def test_panicking_relayed_shim_leaves_no_proxy(
    containerd: Containerd,
    ctd_namespace: str,
    toxiproxy_server: ToxiproxyServer,
    reconverge_run: Any,
) -> None:
    """A relayed daemon that dies (``panic``) never runs its exit path; ``delete`` — which
    containerd runs for a dead shim — deletes the proxy instead, and kills the task process
    the daemon left (as ``runc delete --force`` does). Nothing is left in toxiproxy, in the
    registry, nor in /proc (the teardown leak check would report an orphaned task)."""
    ns, cid = ctd_namespace, "panics"
    annotations = {ANNOTATION_TOXIPROXY: toxiproxy_server.api, f"{FP}Pause": "1*panic"}

    async def main() -> tuple[str, str]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        try:
            await client.create_task(cid)
            await client.start(cid)
            entry = _entry(reconverge_run.dir, ns, cid)
            assert entry["proxy"] in toxiproxy_server.client.names(), entry
            (task,) = [
                t for t in identity.task_procs() if (t.namespace, t.container_id) == (ns, cid)
            ]
            assert task.shim_pid == entry["pid"], (task, entry)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.pause(cid, timeout=10)
            await await_for(
                lambda: asyncio.to_thread(toxiproxy_server.client.names),
                timeout=10,
                what="delete removed the dead shim's proxy",
                accept=lambda names: entry["proxy"] not in names,
            )
            await await_for(
                lambda: _get(client, cid),
                timeout=10,
                what="containerd forgot the dead shim's task",
                accept=lambda g: g[0] == "NOT_FOUND",
            )
            assert not _entry(reconverge_run.dir, ns, cid), "registry entry removed"
            await await_for(
                lambda: asyncio.to_thread(identity.task_procs),
                timeout=10,
                what="delete killed the dead shim's task process",
                accept=lambda procs: task.pid not in {t.pid for t in procs},
            )
            return err.value.code().name, err.value.details() or ""
        finally:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.delete_container(cid)
            await client.close()

    assert asyncio.run(main()) == ("UNKNOWN", "ttrpc: closed: unknown")


@pytest.fixture(scope="module")
def ttrpc_relay(containerd: Containerd) -> str:
    """containerd's ttrpc socket on 127.0.0.1 (socat), for proxies on the events leg."""
    return containerd.tcp_relay("ttrpc")


def test_events_leg_held_until_the_toxic_goes(
    containerd: Containerd,
    ctd_namespace: str,
    toxiproxy: Any,
    ttrpc_relay: str,
    reconverge_run: Any,
) -> None:
    """shim → containerd through toxiproxy: a latency toxic holds /tasks/paused back, and
    removing it lets the very same Forward through (toxiproxy flushes what a removed latency
    toxic holds; a ``timeout`` toxic would drop the bytes instead, and the stub does not
    retry an event whose Forward timed out).

    Order, from the merged journal: toxic added → Pause answered → a barrier delivered
    without /tasks/paused → toxic being removed → the subscriber sees /tasks/paused and the
    stub's Forward of it completes (those two in either order: containerd hands the event
    to subscribers before answering). The hold stays well inside the stub's 5 s Forward
    deadline, so no ``publish_failed``.
    """
    ns, cid = ctd_namespace, "evleg"
    proxy = toxiproxy.create("events", ttrpc_relay)
    annotations = {ANNOTATION_EVENTS_ADDRESS: f"tcp://{proxy.listen}"}
    marks: dict[str, float] = {}

    async def main() -> list[tuple[str, str, int | None]]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        try:
            async with Subscriber(client) as sub:
                await client.create_task(cid)
                await client.start(cid)
                await await_for(
                    lambda: asyncio.sleep(0, sub.topics(cid)),
                    timeout=10,
                    what="/tasks/start through the events proxy",
                    accept=lambda ts: "/tasks/start" in ts,
                )
                marks["start"] = time.monotonic()
                proxy.add_toxic("latency", name="hold", stream="upstream", latency=60_000)
                await client.pause(cid, timeout=10)
                before = await sub.barrier()
                assert ("/tasks/paused", cid) not in [(t, i) for t, i, _ in before], before
                # journaled before the call: toxiproxy's own record comes after its reply,
                # by which time the flushed Forward may already be answered
                journal.emit("test", "removing_toxic", proxy=proxy.name, toxic="hold")
                proxy.remove_toxic("hold")
                await await_for(
                    lambda: asyncio.sleep(0, sub.topics(cid)),
                    timeout=10,
                    what="/tasks/paused once the toxic is gone",
                    accept=lambda ts: "/tasks/paused" in ts,
                )
                await client.resume(cid, timeout=10)
                await client.kill(cid)
                await await_for(
                    lambda: asyncio.sleep(0, sub.topics(cid)),
                    timeout=10,
                    what="/tasks/exit",
                    accept=lambda ts: "/tasks/exit" in ts,
                )
                await client.delete_task(cid)
                await sub.barrier()
                return list(sub.seen)
        finally:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.delete_task(cid)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.delete_container(cid)
            await client.close()

    seen = asyncio.run(main())
    assert [t for t, i, _ in seen if i == cid] == [
        "/tasks/create",
        "/tasks/start",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ], seen
    records = merge.load(reconverge_run.dir)

    def first(event: str, **fields: Any) -> journal.Record:
        hits = [
            r
            for r in records
            if r.mono >= marks["start"]
            and r.event == event
            and all(r.fields.get(k) == v for k, v in fields.items())
        ]
        assert hits, f"no journal record {event} {fields}"
        return hits[0]

    order = [
        first("toxic_added", proxy=proxy.name),
        first("task.pause", outcome="OK"),
        first("event_seen", topic=Subscriber.BARRIER),
        first("removing_toxic", proxy=proxy.name),
    ]
    # after the removal, in either order: containerd hands the event to subscribers before
    # it answers the stub's Forward, and the stub journals once the answer is in
    released = [
        first("event_published", topic="/tasks/paused", container_id=cid),
        first("event_seen", topic="/tasks/paused", container_id=cid),
    ]
    monos = [r.mono for r in order] + [min(r.mono for r in released)]
    assert monos == sorted(monos), [(r.component, r.event, r.mono) for r in order + released]
    assert not [r for r in records if r.event == "publish_failed" and r.mono >= marks["start"]]


def test_events_leg_timeout_toxic_loses_the_event(
    containerd: Containerd,
    ctd_namespace: str,
    toxiproxy: Any,
    ttrpc_relay: str,
    reconverge_run: Any,
) -> None:
    """A ``timeout`` toxic (timeout=0) on shim → containerd *drops* bytes while it is on:
    the stub's Forward of /tasks/paused passes its 5 s deadline (journal ``publish_failed``,
    never ``event_published``), the stub does not retry, and once the toxic is gone the next
    event (/tasks/resumed) arrives on the same connection — /tasks/paused never does. A
    subscriber must live with a lost event, not only a late one. (Costs the 5 s deadline.)
    """
    ns, cid = ctd_namespace, "evlost"
    proxy = toxiproxy.create("events", ttrpc_relay)
    annotations = {ANNOTATION_EVENTS_ADDRESS: f"tcp://{proxy.listen}"}

    def outcomes(since: float) -> list[tuple[str, str]]:
        return [
            (r.event, str(r.fields.get("topic")))
            for r in merge.load(reconverge_run.dir)
            if r.mono >= since
            and r.component == "shim"
            and r.event in ("publish_failed", "event_published")
        ]

    async def main() -> tuple[list[str], list[tuple[str, str]]]:
        client = ContainerdClient(str(containerd.address), ns)
        await client.ensure_namespace()
        await client.create_container(cid, STUB_RUNTIME, annotations=annotations)
        try:
            async with Subscriber(client) as sub:
                await client.create_task(cid)
                await client.start(cid)
                await await_for(
                    lambda: asyncio.sleep(0, sub.topics(cid)),
                    timeout=10,
                    what="/tasks/start through the events proxy",
                    accept=lambda ts: "/tasks/start" in ts,
                )
                t0 = time.monotonic()
                proxy.add_toxic("timeout", name="blackhole", stream="upstream", timeout=0)
                await client.pause(cid, timeout=10)
                await await_for(
                    lambda: asyncio.to_thread(outcomes, t0),
                    timeout=15,
                    what="the stub gives up on /tasks/paused (its 5 s Forward deadline)",
                    accept=lambda o: ("publish_failed", "/tasks/paused") in o,
                )
                proxy.remove_toxic("blackhole")
                await client.resume(cid, timeout=10)
                await await_for(
                    lambda: asyncio.sleep(0, sub.topics(cid)),
                    timeout=10,
                    what="/tasks/resumed after the toxic is gone",
                    accept=lambda ts: "/tasks/resumed" in ts,
                )
                await sub.barrier()
                topics = sub.topics(cid)
                await client.kill(cid)
                await await_for(
                    lambda: _get(client, cid),
                    timeout=10,
                    what=f"{cid} stopped",
                    accept=lambda g: g[0] == "STOPPED",
                )
                await client.delete_task(cid)
                return topics, outcomes(t0)
        finally:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.delete_task(cid)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.delete_container(cid)
            await client.close()

    topics, published = asyncio.run(main())
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/resumed"], topics
    assert ("publish_failed", "/tasks/paused") in published, published
    assert ("event_published", "/tasks/paused") not in published, published
    assert ("event_published", "/tasks/resumed") in published, published


@pytest.mark.parametrize(
    ("annotation", "env", "expected"),
    [
        (None, None, ""),
        ("127.0.0.1:1", None, "127.0.0.1:1"),
        (None, "127.0.0.1:2", "127.0.0.1:2"),  # every shim of such a containerd
        ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"),  # the container's own choice wins
        ("off", "127.0.0.1:2", ""),  # one container opts out
    ],
)
def test_which_toxiproxy_a_shim_uses(
    annotation: str | None, env: str | None, expected: str
) -> None:
    annotations = {ANNOTATION_TOXIPROXY: annotation} if annotation is not None else {}
    environ = {ENV_TOXIPROXY: env} if env is not None else {}
    assert toxiproxy_api(annotations, environ) == expected
