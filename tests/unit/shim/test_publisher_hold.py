"""The publisher's own reordering (``hold``), its release paths, and event timestamps.

Unit level: a ``Publisher`` with no address records what it hands to the wire in ``sent``,
so order, release path and the carried timestamp can be asserted without containerd (the
integration twin is ``tests/integration/shim_events``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import failpoints
from harness.protos import events_pb2
from harness.shim import control as shim_control
from harness.shim import sites
from harness.shim.events import Publisher

EXIT = sites.publish("tasks.exit")


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    failpoints.reset()
    yield
    failpoints.reset()


async def _until(cond, what: str, timeout: float = 2.0) -> None:
    """Wait on a condition with a deadline; say what was seen on timeout."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _topics(pub: Publisher) -> list[str]:
    return [q.topic for q in pub.sent]


def _exit(pid: int = 7) -> events_pb2.TaskExit:
    return events_pb2.TaskExit(container_id="c", id="c", pid=pid)


def test_hold_releases_right_after_the_trigger_topic() -> None:
    async def go() -> list[str]:
        failpoints.enable(EXIT, "1*hold(tasks.paused)")
        pub = Publisher("ns", None)
        pub.start()
        pub.publish("/tasks/exit", _exit())
        pub.publish("/tasks/start", events_pb2.TaskStart(container_id="c"))
        await _until(lambda: len(pub.sent) == 1, "start sent")
        assert pub.held == [("/tasks/exit", "tasks.paused")]
        pub.publish("/tasks/paused", events_pb2.TaskPaused(container_id="c"))
        pub.publish("/tasks/exit", _exit(8))  # the hold was 1*: this one passes
        await _until(lambda: len(pub.sent) == 4, "all four sent")
        assert failpoints.status(EXIT).triggers == 1  # counted as fired when it held
        await pub.close()
        return _topics(pub) + [str(q.event.pid) for q in pub.sent if q.topic == "/tasks/exit"]

    got = asyncio.run(go())
    assert got == ["/tasks/start", "/tasks/paused", "/tasks/exit", "/tasks/exit", "7", "8"]


def test_a_heal_gives_back_held_events_without_their_trigger() -> None:
    async def go() -> list[str]:
        failpoints.enable(EXIT, "hold(tasks.delete)")
        pub = Publisher("ns", None)
        pub.start()
        pub.publish("/tasks/exit", _exit())
        await _until(lambda: pub.held, "the exit held")
        assert not pub.sent
        failpoints.disable(EXIT)  # what the explorer's heal does
        await _until(lambda: pub.sent, "the exit given back by the heal")
        assert not pub.held
        await pub.close()
        return _topics(pub)

    assert asyncio.run(go()) == ["/tasks/exit"]


def test_flush_gives_back_what_is_still_held() -> None:
    async def go() -> list[str]:
        failpoints.enable(EXIT, "hold(tasks.delete)")
        pub = Publisher("ns", None)
        pub.start()
        pub.publish("/tasks/exit", _exit())
        await _until(lambda: pub.held, "the exit held")
        await pub.flush(timeout=2.0)
        await pub.close()
        return _topics(pub)

    assert asyncio.run(go()) == ["/tasks/exit"]


def test_held_and_delayed_events_keep_the_time_of_their_change() -> None:
    async def go() -> tuple[int, int, int]:
        failpoints.enable(EXIT, "1*hold(tasks.paused)")
        failpoints.enable(sites.publish("tasks.paused"), "1*delay(150)")
        pub = Publisher("ns", None)
        pub.start()
        t_exit = time.time_ns()
        pub.publish("/tasks/exit", _exit(), at_ns=t_exit)
        t_pause = time.time_ns()
        pub.publish("/tasks/paused", events_pb2.TaskPaused(container_id="c"))
        await _until(lambda: len(pub.sent) == 2, "both sent")
        after = time.time_ns()
        await pub.close()
        stamps = {q.topic: q.at_ns for q in pub.sent}
        assert after - t_pause >= 150_000_000  # the delay did happen
        return stamps["/tasks/exit"] - t_exit, stamps["/tasks/paused"] - t_pause, after

    d_exit, d_pause, _ = asyncio.run(go())
    assert d_exit == 0  # exactly the time given
    assert 0 <= d_pause < 50_000_000  # queued time, not the send time 150 ms later


def test_hold_names_a_topic_the_stub_publishes() -> None:
    assert sites.hold("/tasks/paused") == "hold(tasks.paused)"
    assert shim_control.hold_term("tasks.delete") == "1*hold(tasks.delete)"
    assert shim_control.hold_term("tasks.delete", None) == "hold(tasks.delete)"
    assert str(failpoints.parse("1*" + sites.hold("tasks.exit"))) == "1*hold(tasks.exit)"
    with pytest.raises(ValueError, match="unknown topic"):
        sites.hold("tasks.oom")
    with pytest.raises(failpoints.FailpointSyntaxError, match="hold needs an argument"):
        failpoints.parse("1*hold")
    with pytest.raises(failpoints.FailpointSyntaxError, match="hold takes a key"):
        failpoints.parse("hold(tasks paused)")
