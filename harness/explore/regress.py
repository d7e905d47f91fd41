"""Saved schedules: the failure files the explorer writes, and their replay.

A saved file is a schedule plus the outcome a replay must reproduce (``expected``), the
symptom it showed and how it was found (``meta``: seed, time to find, steps before and after
shrinking, k-of-n). The same file is a regression case (``suites/test_regressions.py`` runs
every file in ``suites/regressions/``) and a repro (``reconverge repro <file.json>``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.errors import ReconvergeError
from harness.explore import schedule as S

#: replays ``reconverge repro <file.json>`` runs by default (the acceptance asks 5/5)
REPRO_TIMES = 5


def load(path: Path) -> S.Saved:
    """A saved schedule; a missing or malformed file is one clear error."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ReconvergeError(f"cannot read schedule file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReconvergeError(f"{path}: not JSON: {exc}") from None
    return S.Saved.from_json(data, source=str(path))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "schedule"


def save(saved: S.Saved, directory: Path, name: str) -> Path:
    """Write ``<directory>/<slug(name)>.json`` (a number appended if it exists)."""
    directory.mkdir(parents=True, exist_ok=True)
    base = slug(name)
    path = directory / f"{base}.json"
    k = 2
    while path.exists():
        path = directory / f"{base}-{k}.json"
        k += 1
    path.write_text(json.dumps(saved.to_json(), indent=2, sort_keys=False) + "\n")
    return path


def repro(path_text: str, *, times: int = REPRO_TIMES, seed: int | None = None) -> int:
    """``reconverge repro <file.json>``: replay ``times`` times; exit 0 when every replay
    reproduced the file's expected outcome, 1 otherwise (2: bad file, via ReconvergeError)."""
    import secrets

    from harness.explore import worlds
    from harness.explore.cli import quiet_asyncio

    quiet_asyncio()
    path = Path(path_text)
    saved = load(path)
    print(saved.schedule.table(title=f"{path} (bugs: {', '.join(saved.schedule.bugs) or 'none'})"))
    print(f"expected: {saved.expected}" + (f" — {saved.symptom}" if saved.symptom else ""))
    got: list[str] = []
    world = worlds.hooks(saved.schedule.world)
    with world.runner(seed if seed is not None else secrets.randbelow(2**31)) as run:
        for i in range(1, times + 1):
            result = run(saved.schedule, f"repro-{i}")
            got.append(result.outcome)
            print(f"replay {i}/{times}: {result.outcome} — {result.symptom}")
    same = sum(g == saved.expected for g in got)
    print(f"reproduced {same}/{times}")
    return 0 if same == times else 1


def judge_replay(
    verdict: Any, *, suite: str, path: Path, saved: S.Saved, result: Any, buggy: bool, fault: str
) -> None:
    """Turn one regression file's run into the suite's verdict (both worlds' suites).

    Why one place: the saved file names its check (``meta.check``); the buggy variant is
    CAUGHT only when that very check failed, and a run the harness could not finish is a
    test failure, never a verdict.
    """
    import pytest

    if result.outcome == "ERROR":  # the harness broke while running it: not a verdict
        pytest.fail(f"{path.name}: the schedule could not run: {result.symptom}", pytrace=False)
    check = str(saved.meta.get("check", ""))

    def symptom(findings: Any) -> str | None:
        f = findings.get(check)
        return f"{check}: {f.symptom}" if f is not None and f.observed and not f.ok else None

    verdict.judge(
        suite=suite,
        case=path.stem,
        variant="buggy" if buggy else "fixed",
        fault=fault or "schedule",
        findings=result.findings,
        fired=result.fired,
        symptom=symptom,
        fixed_text=result.symptom,
    )
