"""Performing actions: raise, sleep, hang until released or the deadline, in threads and asyncio."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from failpoints import (
    Action,
    FailpointError,
    FailpointHangTimeout,
    FailpointPanic,
)


def fire(registry, spec: str) -> Action:
    fp = registry.point("p")
    registry.enable("p", spec)
    action = fp.evaluate()
    assert action is not None
    return action


def in_thread(fn, *args):
    """Run ``fn`` in a thread; return (thread, box) where box gets 'ok' or the exception."""
    box: list[object] = []

    def run():
        try:
            fn(*args)
            box.append("ok")
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_error_raises_with_the_message(registry):
    with pytest.raises(FailpointError, match=r"^please retry$") as info:
        fire(registry, "1*error(please retry)").apply_sync()
    assert info.value.name == "p"


def test_error_without_argument_names_the_point(registry):
    with pytest.raises(FailpointError, match="failpoint p"):
        fire(registry, "error").apply_sync()


def test_panic_is_not_an_exception(registry):
    action = fire(registry, "panic(kaboom)")
    with pytest.raises(FailpointPanic, match="kaboom"):
        action.apply_sync()
    assert not issubclass(FailpointPanic, Exception)
    with pytest.raises(FailpointPanic):
        try:
            action.apply_sync()
        except Exception:  # a generic handler must not swallow the simulated crash
            pytest.fail("panic was caught as an Exception")


@pytest.mark.parametrize("spec", ["off", "close", "drop", "duplicate(3)", "return(42)"])
def test_site_interpreted_actions_do_nothing_in_apply(registry, spec):
    action = fire(registry, spec)
    started = time.monotonic()
    assert action.apply_sync(deadline=time.monotonic() + 5) is None
    assert asyncio.run(action.apply_async()) is None
    assert time.monotonic() - started < 1.0


def test_duplicate_count_and_delay_seconds(registry):
    assert fire(registry, "duplicate").count == 1
    assert fire(registry, "duplicate(3)").count == 3
    assert fire(registry, "drop").count == 0
    assert fire(registry, "delay(250)").seconds == 0.25
    assert fire(registry, "sleep(20)").kind == "delay"


def test_delay_sleeps(registry):
    action = fire(registry, "delay(50)")
    started = time.monotonic()
    action.apply_sync()
    assert time.monotonic() - started >= 0.045


def test_delay_is_bounded_by_the_deadline(registry):
    action = fire(registry, "delay(60000)")
    started = time.monotonic()
    action.apply_sync(deadline=started + 0.05)
    assert 0.045 <= time.monotonic() - started < 10


def test_disable_cuts_a_delay_short(registry):
    action = fire(registry, "delay(60000)")
    t, box = in_thread(action.apply_sync)
    t.join(timeout=0.05)
    assert t.is_alive()  # really sleeping
    registry.disable("p")
    t.join(timeout=10)
    assert box == ["ok"]


def test_hang_released_by_another_thread(registry):
    action = fire(registry, "hang")
    t, box = in_thread(action.apply_sync, time.monotonic() + 30)
    t.join(timeout=0.05)
    assert t.is_alive() and box == []  # blocked
    assert registry.release("p") is True
    t.join(timeout=10)
    assert box == ["ok"]


def test_release_before_apply_still_releases_that_hang(registry):
    action = fire(registry, "hang")
    registry.release("p")
    action.apply_sync(deadline=time.monotonic() + 10)  # returns at once
    later = registry.point("p").evaluate()
    with pytest.raises(FailpointHangTimeout):  # a hang fired after the release blocks again
        later.apply_sync(deadline=time.monotonic() + 0.02)


def test_hang_past_deadline_raises(registry):
    action = fire(registry, "hang")
    started = time.monotonic()
    with pytest.raises(FailpointHangTimeout) as info:
        action.apply_sync(deadline=started + 0.05)
    assert time.monotonic() - started >= 0.045
    assert isinstance(info.value, TimeoutError)
    assert info.value.name == "p" and info.value.waited >= 0.045


def test_hang_with_deadline_already_past_raises_at_once(registry):
    with pytest.raises(FailpointHangTimeout):
        fire(registry, "hang").apply_sync(deadline=time.monotonic() - 1)


@pytest.mark.parametrize("end", ["disable", "reset", "reenable"])
def test_disable_reset_or_reenable_end_a_hang(registry, end):
    action = fire(registry, "hang")
    t, box = in_thread(action.apply_sync)
    t.join(timeout=0.05)
    assert t.is_alive()
    if end == "disable":
        registry.disable("p")
    elif end == "reset":
        registry.reset()
    else:
        registry.enable("p", "off")
    t.join(timeout=10)
    assert box == ["ok"]


def test_async_hang_released_from_a_thread(registry):
    action = fire(registry, "hang")

    async def main():
        task = asyncio.create_task(action.apply_async(deadline=time.monotonic() + 30))
        await asyncio.sleep(0)  # let it park
        assert not task.done()
        await asyncio.to_thread(registry.release, "p")
        await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_async_hang_past_deadline_raises(registry):
    action = fire(registry, "hang")
    started = time.monotonic()
    with pytest.raises(FailpointHangTimeout):
        asyncio.run(action.apply_async(deadline=started + 0.05))
    assert time.monotonic() - started >= 0.045


def test_async_error_and_delay(registry):
    with pytest.raises(FailpointError, match="x"):
        asyncio.run(fire(registry, "error(x)").apply_async())
    started = time.monotonic()
    asyncio.run(fire(registry, "delay(30)").apply_async())
    assert time.monotonic() - started >= 0.025
    started = time.monotonic()
    asyncio.run(fire(registry, "delay(60000)").apply_async(deadline=started + 0.03))
    assert 0.025 <= time.monotonic() - started < 10


def test_many_async_hangs_park_on_the_loop_not_on_threads(registry):
    fp = registry.point("p")
    registry.enable("p", "hang")

    async def main():
        before = set(threading.enumerate())
        tasks = [asyncio.create_task(fp.evaluate().apply_async()) for _ in range(100)]
        await asyncio.sleep(0)
        # no executor thread per hang (compare identities: threads of earlier tests may end)
        assert set(threading.enumerate()) - before == set()
        assert not any(t.done() for t in tasks)
        registry.release("p")
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(main())


def test_cancelled_async_hang_leaves_no_waiter(registry):
    action = fire(registry, "hang")

    async def main():
        task = asyncio.create_task(action.apply_async())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert action._wake._waiters == []
    registry.release("p")  # the loop is closed; releasing must not fail
