"""Publishing task events to containerd over ttrpc ``Events/Forward``, in order.

One sender task drains a queue so events leave in the order the service produced them
(create → start → paused/resumed → exit → delete), like runc's shim. Each topic is a
failpoint site (``shim.publish.tasks.exit`` …): ``drop`` swallows the event, ``duplicate(n)``
sends n extra copies, ``delay`` holds the queue, ``error`` is journaled and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

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


class Publisher:
    """Queue + one sender; reconnects once per event on ``ttrpc: closed``."""

    def __init__(self, namespace: str, address: str | None) -> None:
        self.namespace = namespace
        self.address = address
        self._queue: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def publish(self, topic: str, event: Message) -> None:
        """Queue an event; it is sent after every event queued before it."""
        self._queue.put_nowait((topic, event))

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every queued event was handled."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.close()

    async def _run(self) -> None:
        while True:
            topic, event = await self._queue.get()
            try:
                await self._handle(topic, event)
            finally:
                self._queue.task_done()

    async def _handle(self, topic: str, event: Message) -> None:
        copies = 1
        action = failpoints.point(sites.publish(topic)).evaluate()
        fields = {"topic": topic, "container_id": getattr(event, "container_id", "")}
        if action is not None:
            journal.emit("shim", "publish_fault", action=action.kind, **fields)
            if action.kind in ("drop", "error", "close"):
                journal.emit("shim", "event_dropped", **fields)
                return
            if action.kind == "duplicate":
                copies += action.count
            elif action.kind in ("delay", "hang"):
                with contextlib.suppress(Exception):
                    await action.apply_async()
        for i in range(copies):
            if await self._send(topic, event):
                journal.emit("shim", "event_published", copy=i + 1, **fields)

    async def _send(self, topic: str, event: Message) -> bool:
        """Forward one event; False (journaled ``publish_failed``) when containerd did not
        answer OK, so the journal never calls a lost event published."""
        if not self.address:
            return True  # nowhere to publish (unit tests): nothing was lost either
        ts = timestamp_pb2.Timestamp()
        ts.FromNanoseconds(time.time_ns())
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
