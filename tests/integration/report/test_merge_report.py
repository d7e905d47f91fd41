"""``reconverge merge DIR…``'s report.html in a real headless chromium, offline.

The shard outputs are written by :mod:`harness.explore.merge` itself (no containerd: the
page under test is the merge's, not a search's); the merge runs through the real CLI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.explore import merge, regress
from harness.explore import schedule as S
from harness.verdict import Verdict


def test_merge_report_renders_without_console_errors(tmp_path: Path, open_page: Any) -> None:
    dirs = [tmp_path / f"shard-{i}" for i in range(2)]
    for i, (d, outcome) in enumerate(zip(dirs, ("MISSED", "CAUGHT"), strict=True)):
        case = f"seed 1 shard {i}/2"
        row = Verdict("explore-sandbox", case, "buggy", "explored", outcome, "", 1.0)
        merge.write([row], d)
    shrunk = S.Schedule((S.Create("sb0"), S.Delete("sb0")), bugs=("runtime.x",))
    saved = S.Saved(
        shrunk,
        "DIVERGED",
        "leak",
        {"confirm": "failed 2 of 2 run(s) (confirm: 2 of at most 3)"},
        original=S.Schedule((S.Create("sb0"), S.Heal(), S.Delete("sb0")), bugs=shrunk.bugs),
        original_confirm="failed 3 of 3 run(s) (confirm: 2 of at most 3)",
    )
    regress.save(saved, dirs[1] / "failures", "found")
    out = tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "merge", *map(str, dirs), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # one shard MISSED
    assert f"{out}/report.html" in done.stdout, done.stdout
    shown = open_page(out / "report.html")
    merged = shown.page.locator("#merged").inner_text()
    assert "2 row(s) from 2 shard(s); CAUGHT 1, MISSED 1" in merged, merged
    assert shown.page.locator("#merged tbody tr").count() == 2
    assert shown.page.locator("table.steps.shrunk tbody tr").count() == 2
    assert shown.page.locator("table.steps.original tbody tr").count() == 3
    assert "failed 3 of 3 run(s)" in shown.page.locator("#schedule-1").inner_text()
    assert shown.errors == [], shown.errors
