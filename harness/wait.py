"""Waiting on a condition with a deadline: the only way the harness synchronises.

Why: a bare ``sleep`` hides races and makes failures silent. Every wait here names what it
waits for and, on timeout, reports the last value it saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from harness.errors import TooSlow

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    accept: Callable[[T], bool] = bool,
) -> T:
    """Call ``probe`` until ``accept(result)`` holds; return that result.

    Raises:
        TooSlow: the deadline passed; carries the last probe result (or exception).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    delay = min(interval, 0.005)
    while True:
        try:
            value = probe()
            if accept(value):
                return value
            last = value
        except Exception as exc:  # a probe error is an observation, not a verdict
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise TooSlow(what, timeout, last)
        time.sleep(delay)
        delay = min(delay * 2, interval)


async def await_for(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    accept: Callable[[T], bool] = bool,
) -> T:
    """Async twin of :func:`wait_for` for probes that are coroutines.

    Raises:
        TooSlow: the deadline passed; carries the last probe result (or exception).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    delay = min(interval, 0.005)
    while True:
        try:
            value = await asyncio.wait_for(probe(), max(deadline - loop.time(), 0.001))
            if accept(value):
                return value
            last = value
        except TimeoutError:
            last = last or "probe timed out"
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        if loop.time() >= deadline:
            raise TooSlow(what, timeout, last)
        await asyncio.sleep(delay)
        delay = min(delay * 2, interval)
