"""The reconciler's view of one sandbox (CubeSandbox ``cubeboxstore.Status``, §1.2–1.3).

Timestamps are unix nanoseconds, 0 = unset. Only the persisted subset survives a restart:
``unknown`` and ``rolling_back`` are memory-only upstream, and losing them on restart is part
of what the crash schedule exercises.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

# derived states (§1.3), CRI's names
UNKNOWN = "UNKNOWN"
EXITED = "EXITED"
PAUSING = "PAUSING"
PAUSED = "PAUSED"
RUNNING = "RUNNING"
CREATED = "CREATED"

SENTINEL_BINDING = "invalid-runtime-restore-base"
LABEL_RUNTIME_SNAPSHOT = "cube.master.runtime.snapshot.id"
LABEL_RUNTIME_ATTACHED = "cube.master.runtime.snapshot.attached_at"
LABEL_RESTORE_SNAPSHOT = "cube.master.runtime.restore.snapshot.id"
LABEL_RESTORE_ATTACHED = "cube.master.runtime.restore.snapshot.attached_at"

PERSISTED = (
    "pid",
    "created_at",
    "started_at",
    "finished_at",
    "paused_at",
    "pausing_at",
    "exit_code",
    "reason",
)


def now_ns() -> int:
    return time.time_ns()


@dataclass
class ContainerStatus:
    """One container's status record; the sandbox's state is its first container's."""

    id: str
    pid: int = 0
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    paused_at: int = 0
    pausing_at: int = 0
    exit_code: int = 0
    reason: str = ""
    unknown: bool = False  # not persisted
    removing: bool = False  # not persisted

    def state(self) -> str:
        """First match wins (§1.3): note PAUSING outranks PAUSED."""
        if self.unknown:
            return UNKNOWN
        if self.finished_at:
            return EXITED
        if self.pausing_at:
            return PAUSING
        if self.paused_at:
            return PAUSED
        if self.started_at:
            return RUNNING
        if self.created_at:
            return CREATED
        return UNKNOWN


@dataclass
class Sandbox:
    """A sandbox record: containers (first = the sandbox task), labels, deletion mark."""

    id: str
    containers: list[ContainerStatus]
    labels: dict[str, str] = field(default_factory=dict)
    user_mark_deleted_at: int = 0
    shim_address: str = ""  # learnt at start, what ``ctr shim`` would dial
    rolling_back: bool = False  # not persisted

    @property
    def first(self) -> ContainerStatus:
        return self.containers[0]

    def state(self) -> str:
        return self.first.state()

    def is_paused(self) -> bool:
        return self.state() in (PAUSING, PAUSED)

    def is_terminated(self) -> bool:
        return self.state() in (UNKNOWN, EXITED)

    def to_persisted(self) -> dict[str, Any]:
        """The JSON upstream writes: no ``unknown``/``removing``/``rolling_back``."""
        return {
            "id": self.id,
            "containers": [{k: asdict(c)[k] for k in ("id", *PERSISTED)} for c in self.containers],
            "labels": dict(self.labels),
            "user_mark_deleted_at": self.user_mark_deleted_at,
            "shim_address": self.shim_address,
        }

    @classmethod
    def from_persisted(cls, data: dict[str, Any]) -> Sandbox:
        return cls(
            id=data["id"],
            containers=[ContainerStatus(**c) for c in data["containers"]],
            labels=dict(data.get("labels", {})),
            user_mark_deleted_at=int(data.get("user_mark_deleted_at", 0)),
            shim_address=str(data.get("shim_address", "")),
        )

    def summary(self) -> dict[str, Any]:
        """What a diff or a timeline row shows."""
        c = self.first
        return {
            "state": self.state(),
            "pausing_at": c.pausing_at,
            "paused_at": c.paused_at,
            "unknown": c.unknown,
            "finished_at": c.finished_at,
            "runtime_snapshot_id": self.labels.get(LABEL_RUNTIME_SNAPSHOT, ""),
            "restore_snapshot_id": self.labels.get(LABEL_RESTORE_SNAPSHOT, ""),
        }
