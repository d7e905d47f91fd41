"""``reconverge report <saved.json>`` with the failing run's journal, in headless chromium.

The journal is written by :mod:`harness.explore.failure_journal` itself (no containerd: the
page under test is the report's; the real-process side is
``tests/integration/explore/test_failure_journal.py``); the report runs through the CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.explore import failure_journal, regress
from harness.explore import schedule as S
from harness.journal.record import Record


def _run() -> list[Record]:
    rows = [
        ("explore", "explore", "schedule", {"namespace": "ex-1-ab", "steps": 2}),
        ("explore", "reconciler", "create", {"id": "sb0"}),
        ("shim:sb0", "shim", "request", {"method": "Shutdown", "stream_id": 3}),
        ("shim:sb0", "failpoint", "trigger", {"name": "shim.Shutdown.before", "action": "error"}),
        ("shim:sb0", "shim", "reply", {"method": "Shutdown", "stream_id": 3, "outcome": "err"}),
        ("explore", "leaks", "leak", {"kind": "shim-process", "id": "sb0"}),
    ]
    return [
        Record(50.0 + i * 0.3, 1.7e9 + i, 7 if p.startswith("shim") else 1, p, c, e, f)
        for i, (p, c, e, f) in enumerate(rows)
    ]


def test_saved_failure_report_draws_its_run_and_the_script_binds_it(
    tmp_path: Path, open_page: Any
) -> None:
    shrunk = S.Schedule((S.Create("sb0"), S.Delete("sb0")), bugs=("runtime.x",))
    saved = S.Saved(shrunk, "DIVERGED", "leak", {"seed": 1}, original=shrunk)
    path = regress.save(saved, tmp_path, "found")
    failure_journal.write(failure_journal.path_for(path), _run())
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = open_page(tmp_path / "found.report.html")
    page = shown.page
    labels = page.locator(".saved-journal .lane-label").all_inner_texts()
    assert labels[:2] == ["reconciler", "shim:sb0"] and "checks" in labels, labels
    assert page.locator(".saved-journal table.timeline tbody tr").count() == 6
    width = float(page.get_attribute("#lanes-svg", "width") or 0)
    page.click("#zoom-in")
    assert float(page.get_attribute("#lanes-svg", "width") or 0) > width
    page.click("#jump")
    assert page.get_attribute("body", "data-jumped") == "6"
    assert "hl" in (page.locator("tr#T6").get_attribute("class") or "")
    assert shown.errors == [], shown.errors
