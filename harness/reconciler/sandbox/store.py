"""Sandbox records in sqlite, so a reconciler killed mid-pause reloads them (§4.3.9).

Why sqlite: a real file with atomic commits is what survives a crash; a dict would make the
restart schedule meaningless. One JSON document per sandbox, the persisted subset only.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from harness.reconciler.sandbox.record import Sandbox


class StoreClosed(Exception):
    """The store was closed (the reconciler crashed): nothing more may be written."""


class SandboxStore:
    """Persisted sandbox records keyed by id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS sandbox (id TEXT PRIMARY KEY, doc TEXT)")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreClosed(f"sandbox store {self.path} is closed")
        return self._db

    def save(self, sb: Sandbox) -> None:
        doc = json.dumps(sb.to_persisted(), sort_keys=True)
        self._conn().execute("INSERT OR REPLACE INTO sandbox (id, doc) VALUES (?, ?)", (sb.id, doc))

    def delete(self, sandbox_id: str) -> None:
        self._conn().execute("DELETE FROM sandbox WHERE id = ?", (sandbox_id,))

    def load_all(self) -> dict[str, Sandbox]:
        rows = self._conn().execute("SELECT doc FROM sandbox ORDER BY id").fetchall()
        return {sb.id: sb for sb in (Sandbox.from_persisted(json.loads(r[0])) for r in rows)}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
