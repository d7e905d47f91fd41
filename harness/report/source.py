"""What a report is made from: a failure bundle, a run directory, or a journal file.

Why one loader: ``reconverge timeline``, ``reconverge report`` and the pytest plugin must
agree on what an artifact holds, and a replay must fail loudly (one line, exit 2) when the
path is wrong or holds nothing — an empty table for a typo is how a missing artifact used
to pass for "nothing happened".

Shapes accepted:

- a failure bundle: ``<dir>/journal.jsonl`` (+ ``meta.json``, ``verdict.json``);
- a run directory or an artifacts directory: ``<dir>/journal/*.jsonl`` (+ ``run.json``,
  ``verdicts.json``, ``meta.json``);
- one journal file (``*.jsonl``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ReconvergeError
from harness.journal import merge
from harness.journal.record import Record

#: The file a failure bundle keeps its journal in.
BUNDLE_JOURNAL = "journal.jsonl"
#: The file with how the bundle was made (seed, repro, settings, versions).
META = "meta.json"


@dataclass
class Evidence:
    """A loaded artifact: the records plus whatever context was stored beside them."""

    path: Path
    kind: str  # "bundle" | "run" | "file"
    records: list[Record]
    meta: dict[str, Any] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def title(self) -> str:
        """What the report is about (the case's node id, else the path)."""
        return str(self.meta.get("nodeid") or self.meta.get("title") or self.path)


def _read_lines(path: Path) -> list[Record]:
    """Records of one JSON-lines file, ordered like :func:`merge.load`'s."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ReconvergeError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    out = merge.parse(text)
    out.sort(key=lambda r: (r.mono, r.wall, r.pid))
    return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load(path: Path | str) -> Evidence:
    """Load a bundle, run dir or journal file.

    Raises:
        ReconvergeError: the path does not exist, holds no journal, or the journal has no
            records (exit 2, one line).
    """
    p = Path(path)
    if not p.exists():
        raise ReconvergeError(
            f"no such bundle or run dir: {p}",
            fix="pass artifacts/failures/<case>/ or a run dir kept with --reconverge-keep",
        )
    if p.is_file():
        kind, records, base = "file", _read_lines(p), p.parent
    elif (p / BUNDLE_JOURNAL).is_file():
        kind, records, base = "bundle", _read_lines(p / BUNDLE_JOURNAL), p
    elif (p / "journal").is_dir() and any((p / "journal").glob("*.jsonl")):
        kind, records, base = "run", merge.load(p), p
    else:
        raise ReconvergeError(
            f"{p} holds no journal (want {BUNDLE_JOURNAL} of a failure bundle or "
            "journal/*.jsonl of a run dir)"
        )
    if not records:
        raise ReconvergeError(f"the journal of {p} is empty (no readable records)")
    meta = _json(base / META) if kind != "file" else None
    meta = dict(meta) if isinstance(meta, dict) else {}
    run_json = _json(base / "run.json") if kind == "run" else None
    if isinstance(run_json, dict):
        meta.setdefault("seed", run_json.get("seed"))
        meta.setdefault("run", run_json.get("id") or base.name)
    return Evidence(p, kind, records, meta, _verdicts(base, kind, meta, records))


def _verdicts(
    base: Path, kind: str, meta: dict[str, Any], records: list[Record]
) -> list[dict[str, Any]]:
    """Verdict rows: stored ones first (bundle meta, verdicts.json), else the journal's.

    The row shape is :mod:`harness.verdict`'s (``rows`` reads either schema of the file,
    ``from_record`` the plugin's journaled ``verdict`` records).
    """
    from harness import verdict as model

    if isinstance(meta.get("verdict"), dict):
        return [meta["verdict"]]
    stored = model.rows(_json(base / model.FILE_NAME)) if kind != "file" else []
    if stored:
        return stored
    return [
        model.from_record(r.event, r.fields).to_dict() for r in records if r.component == "verdict"
    ]
