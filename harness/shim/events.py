"""Publishing task events to containerd over ttrpc ``Events/Forward``, in order.

One sender task drains a queue so events leave in the order the service produced them
(create → start → paused/resumed → exit → delete), like runc's shim. Each topic is a
failpoint site (``shim.publish.tasks.exit`` …): ``drop`` swallows the event, ``duplicate(n)``
sends n extra copies, ``delay`` holds the queue, ``error`` is journaled and skipped, and
``hold(<topic>)`` keeps the event back (in order) until the next event of ``<topic>`` has
left — the stub reordering its own events — or until the point is healed (released,
disabled, re-enabled) or the publisher flushes, so nothing held is lost silently.

The envelope timestamp is taken when the event is *queued* — right after the state change
it reports, as runc's shim stamps it in ``Publish`` — and travels with it, so a delayed,
held or duplicated event keeps the time its change happened, not the time it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass, field

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

import failpoints
from harness import journal
from harness.protos import events_ttrpc_pb2
from harness.shim import sites
from harness.ttrpc import Client, Closed, TTRPCError

SERVICE = "containerd.services.events.ttrpc.v1.Events"


def events_address() -> str | None:
    """Where events go: ``RECONVERGE_SHIM_EVENTS_ADDRESS`` (e.g. via toxiproxy) or TTRPC_ADDRESS."""
    return os.environ.get("RECONVERGE_SHIM_EVENTS_ADDRESS") or os.environ.get("TTRPC_ADDRESS")


@dataclass
class Queued:
    """One event on its way out, with the time its state change happened (``at_ns``)."""

    topic: str
    event: Message
    at_ns: int
    #: False for an event released from a hold: it already passed its failpoint
    evaluate: bool = True


@dataclass
class _Release:
    """A queue marker: give back held events (``by``: ``heal`` or ``flush``)."""

    by: str
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Held:
    item: Queued
    until: str  # the topic key whose next event releases it
    action: failpoints.Action
    since: float = field(default_factory=time.monotonic)


class Publisher:
    """Queue + one sender; reconnects once per event on ``ttrpc: closed``."""

    def __init__(self, namespace: str, address: str | None) -> None:
        self.namespace = namespace
        self.address = address
        self._queue: asyncio.Queue[Queued | _Release] = asyncio.Queue()
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._held: list[_Held] = []
        self._watchers: set[asyncio.Task[None]] = set()
        #: the last events handed to the wire, in order (what tests and ``info`` read)
        self.sent: deque[Queued] = deque(maxlen=256)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def publish(self, topic: str, event: Message, *, at_ns: int | None = None) -> None:
        """Queue an event; it is sent after every event queued before it.

        ``at_ns``: when the reported change happened (wall clock, ns); default now, which is
        right for callers that publish as the change happens. It is the envelope timestamp.
        """
        self._queue.put_nowait(Queued(topic, event, time.time_ns() if at_ns is None else at_ns))

    @property
    def held(self) -> list[tuple[str, str]]:
        """(topic, until) of every event held right now, oldest first."""
        return [(h.item.topic, h.until) for h in self._held]

    async def flush(self, timeout: float = 5.0) -> None:
        """Give back every held event, then wait (bounded) until every queued one was
        handled: the daemon calls this on its way out."""
        self._queue.put_nowait(_Release("flush"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.close()

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Release):
                    await self._release(item.by)
                    item.done.set()
                else:
                    await self._handle(item)
            finally:
                self._queue.task_done()

    async def _handle(self, item: Queued) -> None:
        topic, event = item.topic, item.event
        copies = 1
        action = failpoints.point(sites.publish(topic)).evaluate() if item.evaluate else None
        fields = {"topic": topic, "container_id": getattr(event, "container_id", "")}
        if action is not None:
            journal.emit("shim", "publish_fault", action=action.kind, arg=action.arg, **fields)
            if action.kind in ("drop", "error", "close"):
                journal.emit("shim", "event_dropped", **fields)
                return
            if action.kind == "hold":
                self._hold(item, action, fields)
                return
            if action.kind == "duplicate":
                copies += action.count
            elif action.kind in ("delay", "hang"):
                with contextlib.suppress(Exception):
                    await action.apply_async()
        for i in range(copies):
            if await self._send(item):
                journal.emit("shim", "event_published", copy=i + 1, **fields)
        await self._release("trigger", sites.topic_key(topic))

    def _hold(self, item: Queued, action: failpoints.Action, fields: dict[str, str]) -> None:
        """Keep ``item`` back until its trigger topic went by, or the point is healed."""
        until = sites.topic_key(action.arg or "")
        self._held.append(_Held(item, until, action))
        journal.emit("shim", "event_held", until=until, **fields)
        watcher = asyncio.ensure_future(self._on_heal(action))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _on_heal(self, action: failpoints.Action) -> None:
        await action.released()
        self._queue.put_nowait(_Release("heal"))  # through the queue: order is kept

    async def _release(self, by: str, until: str = "") -> None:
        """Send the held events ``by`` releases: those waiting for ``until`` (trigger), those
        whose point was healed (heal), or all (flush); oldest first, no failpoint again."""
        if by == "trigger":
            out = [h for h in self._held if h.until == until]
        elif by == "heal":
            out = [h for h in self._held if h.action.ended()]
        else:
            out = list(self._held)
        if not out:
            return
        gone = {id(h) for h in out}
        self._held = [h for h in self._held if id(h) not in gone]
        for h in out:
            cid = getattr(h.item.event, "container_id", "")
            fields = {"topic": h.item.topic, "container_id": cid}
            # by=heal/flush: the hold ended without its trigger (the journal says so)
            journal.emit(
                "shim",
                "hold_released",
                by=by,
                until=h.until,
                held_ms=round((time.monotonic() - h.since) * 1000, 1),
                **fields,
            )
            if await self._send(h.item):
                journal.emit("shim", "event_published", copy=1, released_by=by, **fields)

    async def _send(self, item: Queued) -> bool:
        """Forward one event; False (journaled ``publish_failed``) when containerd did not
        answer OK, so the journal never calls a lost event published."""
        topic, event = item.topic, item.event
        self.sent.append(item)
        if not self.address:
            return True  # nowhere to publish (unit tests): nothing was lost either
        ts = timestamp_pb2.Timestamp()
        ts.FromNanoseconds(item.at_ns)
        envelope = events_ttrpc_pb2.Envelope(
            timestamp=ts,
            namespace=self.namespace,
            topic=topic,
            # bare full name: containerd 1.6 resolves type URLs without the googleapis prefix
            event=any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString()),
        )
        payload = events_ttrpc_pb2.ForwardRequest(envelope=envelope).SerializeToString()
        for attempt in (1, 2):
            try:
                if self._client is None or self._client.closed:
                    self._client = await Client.connect(self.address)
                await self._client.call(
                    SERVICE,
                    "Forward",
                    payload,
                    timeout=5.0,
                    metadata={"containerd-namespace-ttrpc": self.namespace},
                )
                return True
            except (Closed, OSError, TimeoutError) as exc:
                self._client = None
                if attempt == 2:
                    journal.emit("shim", "publish_failed", topic=topic, error=str(exc))
            except TTRPCError as exc:
                # not retried: a Forward past its deadline may still be delivered late
                journal.emit("shim", "publish_failed", topic=topic, error=str(exc))
                return False
        return False
