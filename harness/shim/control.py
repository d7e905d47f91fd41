"""Driving a live stub from outside: the typed face of its control-socket commands.

Why a module: the explorer (and tests) reach a live shim through its registry entry's
``control`` socket; spelling the command names and payloads once here keeps callers from
drifting from what ``TaskService.info``/``late_exit`` accept. The incarnation record
(``<key>.exits.jsonl``) is readable without any live daemon, so a caller can learn an
earlier task's pid and exit time after its shim is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import failpoints
from harness.shim import history, sites
from harness.shim.paths import ShimPaths


def client(entry: dict[str, Any], timeout: float = 5.0) -> failpoints.ControlClient:
    """The control client of the shim a registry entry describes."""
    return failpoints.ControlClient(f"unix:{entry['control']}", timeout=timeout)


def info(entry: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
    """Command ``info``: ``shim_pid``, ``tasks`` ({id: pid, incarnation, state, created_ns,
    exited_ns, exit_status}), ``incarnations`` ({id: [...]}) and ``held``."""
    return client(entry).command("info", {"id": task_id} if task_id else {})


def late_exit(
    entry: dict[str, Any],
    *,
    task_id: str | None = None,
    incarnation: int | None = None,
    pid: int | None = None,
    exited_at_ns: int | None = None,
    exit_status: int | None = None,
) -> dict[str, Any]:
    """Command ``late_exit``: the live shim publishes ``/tasks/exit`` of an earlier task of
    the id. Without ``pid``: the latest exited earlier incarnation (or ``incarnation``) from
    the record. Returns ``{id, pid, exited_at_ns, exit_status}`` as queued.

    Raises:
        ValueError: the shim refused (no earlier exited incarnation, bad fields).
    """
    args: dict[str, Any] = {}
    if task_id:
        args["id"] = task_id
    if incarnation is not None:
        args["incarnation"] = incarnation
    if pid is not None:
        args.update(pid=pid, exited_at_ns=exited_at_ns or 0)
        if exit_status is not None:
            args["exit_status"] = exit_status
    return client(entry).command("late_exit", args)


def hold_term(topic: str, count: int | None = 1) -> str:
    """``1*hold(tasks.delete)``: the term for ``shim.publish.<held topic>``.

    Raises:
        ValueError: a topic the stub never publishes.
    """
    text = sites.hold(topic)
    return text if count is None else f"{count}*{text}"


def incarnations(
    run_dir: str | Path, containerd_address: str, namespace: str, task_id: str
) -> list[dict[str, Any]]:
    """Every incarnation of ``task_id`` from the record on disk (no live shim needed):
    ``[{incarnation, pid, created_ns, exited_ns, exit_status, shim_pid}, …]`` oldest first.

    ``containerd_address``: the registry entry's ``containerd_address`` (part of the key).
    """
    key = ShimPaths.of(containerd_address, namespace, task_id).key
    return history.fold(history.read(str(Path(run_dir) / "shims" / f"{key}.exits.jsonl")), task_id)
