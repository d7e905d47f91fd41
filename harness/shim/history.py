"""The incarnation record of one shim key: every task created under an id, and its exit.

Why a file of its own that outlives the daemon: after a sandbox is deleted its shim is
gone, yet the next incarnation under the same id (same shim key) — and the explorer —
need the earlier task's pid and exit time to stage its *late* exit. JSON lines, appended:
``{"event": "create"|"exit", "id", "incarnation", "pid", "at_ns", "exit_status", "shim_pid"}``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any


def read(path: str) -> list[dict[str, Any]]:
    """Every record in ``path``, oldest first (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        for line in f:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def append(path: str, record: dict[str, Any]) -> None:
    """Add one record (one ``write`` of one line: a reader never sees half of it twice)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def fold(records: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """One dict per incarnation of ``task_id``: ``incarnation``, ``pid``, ``created_ns``,
    ``exited_ns`` (0 while running), ``exit_status`` (None while running), ``shim_pid``;
    oldest first."""
    out: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("id") != task_id:
            continue
        n = int(r.get("incarnation") or 0)
        entry = out.setdefault(
            n, {"id": task_id, "incarnation": n, "exited_ns": 0, "exit_status": None}
        )
        if r.get("event") == "create":
            entry.update(pid=r["pid"], created_ns=r["at_ns"], shim_pid=r.get("shim_pid"))
        elif r.get("event") == "exit":
            entry.update(exited_ns=r["at_ns"], exit_status=r["exit_status"])
    return [out[n] for n in sorted(out)]
