"""The per-key FIFO backoff queue (§2.2), driven tick by tick without a real clock wait."""

from __future__ import annotations

import asyncio

from harness.reconciler.sandbox.backoff import BackoffQueue
from harness.reconciler.sandbox.timing import Timing

FAST = Timing(backoff_init=0.0, backoff_max=0.0, handle_event=1.0)


def run(coro):
    return asyncio.run(coro)


def test_failing_event_queues_and_later_events_of_its_key_wait_behind_it():
    handled: list[str] = []
    fail = {"a1"}

    async def handler(evt: str) -> None:
        if evt in fail:
            raise RuntimeError("retry")
        handled.append(evt)

    async def scenario() -> BackoffQueue:
        q = BackoffQueue(handler, FAST)
        await q.handle("a", "a1")
        await q.handle("a", "a2")  # behind a1: not handled now
        await q.handle("b", "b1")  # other key: handled now
        assert handled == ["b1"] and q.depth() == {"a": 2}
        fail.clear()
        await q.tick()
        return q

    q = run(scenario())
    assert handled == ["b1", "a1", "a2"] and q.depth() == {}


def test_replay_failure_requeues_the_suffix_with_doubled_duration():
    calls: list[str] = []

    async def handler(evt: str) -> None:
        calls.append(evt)
        if evt == "x2":
            raise RuntimeError("still failing")

    async def scenario() -> BackoffQueue:
        q = BackoffQueue(handler, Timing(backoff_init=0.0, backoff_max=8.0))
        q.backoff("k", "x1")
        q.backoff("k", "x2")
        q.backoff("k", "x3")
        q.queues["k"].duration = 1.0
        q.queues["k"].expires = 0.0
        await q.tick()
        return q

    q = run(scenario())
    assert calls == ["x1", "x2"]
    assert q.queues["k"].events == ["x2", "x3"] and q.queues["k"].duration == 2.0


def test_handler_over_its_deadline_counts_as_a_failure():
    async def slow(evt: str) -> None:
        await asyncio.sleep(1)

    async def scenario() -> BackoffQueue:
        q = BackoffQueue(slow, Timing(handle_event=0.01))
        await q.handle("k", "e")
        return q

    assert run(scenario()).depth() == {"k": 1}
