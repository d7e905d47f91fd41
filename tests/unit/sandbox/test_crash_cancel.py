"""A crash (kill -9) ends even when a task swallows its first cancel.

Why: Python 3.11's ``asyncio.wait_for`` can swallow a cancel that lands as its inner call
completes; the explorer saw a restart step hang 60 s on such a task. The reconciler's
``crash`` must cancel again until every task has ended.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.reconciler.sandbox.reconciler import SandboxReconciler


class NoRuntime:
    """Nothing is called: the test only crashes a reconciler with one stubborn task."""


async def _stubborn(swallowed: list[int], waiting: asyncio.Event) -> None:
    """Swallows the first cancel, then waits like a watcher on a task's Wait."""
    waiting.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        swallowed.append(1)
    await asyncio.Event().wait()


def test_crash_ends_a_task_that_swallowed_its_first_cancel(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        rec = SandboxReconciler(NoRuntime(), tmp_path / "store.db", runtime_name="none")  # type: ignore[arg-type]
        swallowed: list[int] = []
        waiting = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_stubborn(swallowed, waiting))
        rec._ops.add(task)
        await waiting.wait()  # the task is inside its first await
        await asyncio.wait_for(rec.crash(), timeout=10)
        assert task.done()
        return swallowed

    assert asyncio.run(scenario()) == [1]
