"""Incarnations of a task id and the late exit of an earlier one (``info``/``late_exit``).

The record is a file that outlives a daemon, so a second ``TaskService`` on the same file
plays the shim of the next incarnation; ``late_exit`` must pick the earlier task's pid and
exit time, never the live one's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.shim.events import Publisher
from harness.shim.service import Task, TaskService


def _service(history: Path) -> TaskService:
    return TaskService("ns", Publisher("ns", None), lambda: None, history=str(history))


def _run_incarnation(svc: TaskService, pid: int, status: int | None) -> Task:
    """What ``create`` records, then (``status`` given) what the reaper does."""
    earlier = svc.incarnations("sb")
    n = earlier[-1]["incarnation"] + 1 if earlier else 1
    task = Task("sb", "/b", pid, incarnation=n, created_ns=n * 1000)
    svc.tasks["sb"] = task
    svc._record(event="create", id="sb", incarnation=n, pid=pid, at_ns=task.created_ns)
    if status is not None:
        svc.on_child_exit(pid, status)
    return task


def test_late_exit_publishes_the_earlier_incarnation(tmp_path: Path) -> None:
    history = tmp_path / "k.exits.jsonl"

    async def go() -> tuple[dict, dict, list]:
        first = _service(history)
        old = _run_incarnation(first, pid=4242, status=137)
        second = _service(history)  # the next daemon, same shim key
        _run_incarnation(second, pid=5151, status=None)
        info = second.info({})
        sent = second.late_exit({})
        queued = [
            second.publisher._queue.get_nowait() for _ in range(second.publisher._queue.qsize())
        ]
        return info | {"old_exited_ns": old.exited_ns}, sent, queued

    info, sent, queued = asyncio.run(go())
    incs = info["incarnations"]["sb"]
    assert [(i["incarnation"], i["pid"]) for i in incs] == [(1, 4242), (2, 5151)]
    assert incs[0]["exited_ns"] == info["old_exited_ns"] and incs[0]["exit_status"] == 137
    assert info["tasks"]["sb"]["pid"] == 5151 and info["tasks"]["sb"]["incarnation"] == 2
    assert sent == {
        "id": "sb",
        "pid": 4242,
        "exited_at_ns": info["old_exited_ns"],
        "exit_status": 137,
    }
    (item,) = queued
    assert item.topic == "/tasks/exit" and item.event.pid == 4242
    assert item.at_ns == info["old_exited_ns"]  # the envelope carries the old exit time
    assert item.event.exited_at.ToNanoseconds() == info["old_exited_ns"]


def test_late_exit_with_explicit_fields_and_its_refusals(tmp_path: Path) -> None:
    svc = _service(tmp_path / "k.exits.jsonl")
    _run_incarnation(svc, pid=99, status=None)
    with pytest.raises(ValueError, match="no earlier exited incarnation"):
        svc.late_exit({})  # the live task is not an earlier incarnation
    got = svc.late_exit({"pid": 12, "exited_at_ns": 5_000, "exit_status": 1})
    assert got == {"id": "sb", "pid": 12, "exited_at_ns": 5_000, "exit_status": 1}
    with pytest.raises(ValueError, match="positive"):
        svc.late_exit({"pid": 12})
    with pytest.raises(ValueError, match="bad argument"):
        svc.late_exit({"pid": "twelve", "exited_at_ns": 1})
