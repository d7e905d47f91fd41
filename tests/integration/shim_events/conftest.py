"""containerd's event stream as the tests of the stub's event capabilities read it.

Why a recorder of its own: these tests assert on what an event consumer really gets from
containerd 1.6.20 — the envelope timestamp, TaskExit's pid and ``exited_at``, the order —
and on when it arrived, so each event is kept whole with its arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from harness.protos import events_pb2
from harness.providers.containerd_client import ContainerdClient
from harness.wait import await_for

BARRIER = "/reconverge/barrier"


@dataclass(frozen=True)
class Seen:
    """One event as the subscriber got it."""

    topic: str
    event: Any
    stamped_ns: int  # the envelope timestamp containerd forwarded
    received_ns: int  # wall clock when the subscriber got it

    @property
    def container_id(self) -> str:
        return str(getattr(self.event, "container_id", "") or "")


class EventLog:
    """Every event of one namespace, in arrival order, from subscription on."""

    def __init__(self, client: ContainerdClient) -> None:
        self.client = client
        self.seen: list[Seen] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventLog:
        self._task = asyncio.ensure_future(self._consume())
        marker = f"barrier-{time.monotonic_ns()}"

        async def subscribed() -> bool:  # a marker of our own came back: we are subscribed
            await self.client.publish(BARRIER, events_pb2.TaskPaused(container_id=marker))
            return any(s.container_id == marker for s in self.seen)

        await await_for(subscribed, timeout=10, what="subscribed (barrier seen)", interval=0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._task

    async def _consume(self) -> None:
        async for env in self.client.subscribe(f"namespace=={self.client.namespace}"):
            self.seen.append(Seen(env.topic, env.event, env.timestamp_ns, time.time_ns()))

    def of(self, cid: str) -> list[Seen]:
        """The events of container ``cid``, in arrival order."""
        return [s for s in self.seen if s.container_id == cid]

    async def first(self, cid: str, topic: str, match: Callable[[Seen], bool] = bool) -> Seen:
        """The first ``topic`` event of ``cid`` matching ``match`` (waits, bounded)."""

        async def look() -> Seen | None:
            return next((s for s in self.of(cid) if s.topic == topic and match(s)), None)

        return await await_for(look, timeout=15, what=f"{topic} of {cid}", interval=0.02)

    def topics(self, cid: str) -> list[str]:
        return [s.topic for s in self.of(cid)]


@pytest.fixture
def event_log() -> Callable[[ContainerdClient], EventLog]:
    """``async with event_log(client) as log:`` — subscribed before the case acts."""
    return EventLog


async def remove(client: ContainerdClient, cid: str) -> None:
    """Kill the task, wait for its exit, delete task and container; each step may already be
    done (the case ended it itself), so each one's failure is only that."""
    for step in (
        lambda: client.kill(cid),
        lambda: client.wait(cid, timeout=10),
        lambda: client.delete_task(cid),
        lambda: client.delete_container(cid),
    ):
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.RpcError, TimeoutError):
            await step()


@pytest.fixture
def remove_container() -> Callable[[ContainerdClient, str], Any]:
    """``await remove_container(client, cid)`` in a case's ``finally``."""
    return remove
