"""``reconverge run --repeat``: k/n per verdict in the output and in ``artifacts/report.html``.

The suite is real pytest through the real runner; its verdict flips on the second repeat
(a counter file stands for a flaky interleaving), which is exactly what k/n must show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

SUITE = textwrap.dedent(
    """
    from pathlib import Path

    import pytest

    from harness import journal

    pytestmark = pytest.mark.suite
    COUNTER = Path(__file__).with_name("runs.txt")


    def test_flaky_catch(reconverge_run, verdict):
        n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
        COUNTER.write_text(str(n))
        journal.emit("check", "symptom", ok=n == 1, symptom=f"repeat {n}")
        verdict.record(
            suite="demo", case="flaky", variant="buggy", fault="none",
            outcome="CAUGHT" if n == 1 else "MISSED", symptom=f"repeat {n}",
        )
    """
)


def test_repeat_prints_and_reports_k_of_n(tmp_path: Path, open_page: Any) -> None:
    (tmp_path / "test_flaky_suite.py").write_text(SUITE)
    art = tmp_path / "art"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["RECONVERGE_RUN_ROOT"] = tempfile.mkdtemp(prefix="rcvk", dir="/tmp")
    env.pop("CI", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--repeat",
            "2",
            "--seed",
            "4",
            "--artifacts",
            str(art),
            "test_flaky_suite.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-3000:]
    assert "CAUGHT 1/2, MISSED 1/2" in text, text[-3000:]
    page = art / "report.html"
    assert page.is_file(), text[-2000:]
    assert (art / "repeat-1" / "report.html").is_file()
    shown = open_page(page)
    repeats = shown.page.locator("#repeats").inner_text()
    assert "CAUGHT 1/2, MISSED 1/2" in repeats and "NO" in repeats, repeats
    differing = shown.page.locator("#repeats tr.rep-differs")  # highlighted, listed first
    assert differing.count() == 1 and "CAUGHT 1/2, MISSED 1/2" in differing.inner_text()
    assert "verdicts differ across 2 repeats for 1 of 1 case(s)" in repeats, repeats
    assert shown.page.locator(".links a").count() == 2
    assert shown.errors == [], shown.errors
