"""The one record type every journal line holds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """One thing that happened: who (proc, component), what (event), and the details.

    ``mono`` orders records across processes; ``wall`` is for humans and log correlation.
    """

    mono: float
    wall: float
    pid: int
    proc: str
    component: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise to one JSON line (no trailing newline)."""
        return json.dumps(
            {
                "mono": self.mono,
                "wall": self.wall,
                "pid": self.pid,
                "proc": self.proc,
                "component": self.component,
                "event": self.event,
                "fields": self.fields,
            },
            separators=(",", ":"),
            default=str,
        )

    @classmethod
    def from_json(cls, line: str) -> Record:
        """Parse a line written by :meth:`to_json`."""
        d = json.loads(line)
        return cls(
            mono=float(d["mono"]),
            wall=float(d["wall"]),
            pid=int(d["pid"]),
            proc=str(d["proc"]),
            component=str(d["component"]),
            event=str(d["event"]),
            fields=dict(d.get("fields") or {}),
        )
