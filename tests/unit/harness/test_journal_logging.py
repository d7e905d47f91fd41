"""Journal records reach ``logging.getLogger("reconverge")`` — and cost nothing unheard."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from harness import journal
from harness.journal import bridge


def test_records_are_logged_per_actor_when_info_is_enabled(caplog, tmp_path: Path):
    caplog.set_level(logging.INFO, logger="reconverge")
    j = journal.Journal(tmp_path, "unit")
    try:
        rec = j.emit("shim", "Pause", id="c1", result="ok")
    finally:
        j.close()
    (logged,) = [r for r in caplog.records if r.name.startswith("reconverge")]
    assert logged.name == "reconverge.shim" and logged.levelno == logging.INFO
    assert logged.getMessage() == "unit shim.Pause id=c1 result=ok"
    assert logged.reconverge_record == rec
    assert logged.filename == Path(__file__).name  # the emitter, not the bridge


def test_module_level_emit_points_at_its_caller_too(caplog):
    caplog.set_level(logging.INFO, logger="reconverge")
    journal.emit("reconciler", "op", step=1)
    (logged,) = [r for r in caplog.records if r.name == "reconverge.reconciler"]
    assert logged.filename == Path(__file__).name


def test_nothing_is_formatted_when_no_one_listens(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="reconverge")

    def boom(rec: object) -> str:
        raise AssertionError("fields formatted although INFO is disabled")

    monkeypatch.setattr(bridge, "_fields", boom)
    journal.Journal(None, "unit").emit("check", "quiet", big="x" * 10_000)
    assert not [r for r in caplog.records if r.name.startswith("reconverge")]


def test_long_values_are_cut_in_the_log_line_only(caplog, tmp_path: Path):
    caplog.set_level(logging.INFO, logger="reconverge")
    j = journal.Journal(tmp_path, "unit")
    try:
        rec = j.emit("check", "big", blob="y" * 1000)
    finally:
        j.close()
    (logged,) = [r for r in caplog.records if r.name == "reconverge.check"]
    assert len(logged.getMessage()) < 300 and logged.getMessage().endswith("…")
    assert rec.fields["blob"] == "y" * 1000


TEST = """
from harness import journal

def test_emits():
    journal.emit("probe", "seen", n=7)
"""


def test_log_cli_level_shows_records_live(tmp_path: Path):
    (tmp_path / "test_probe.py").write_text(TEST)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--log-cli-level=INFO", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reconverge.probe" in out.stdout and "probe.seen n=7" in out.stdout, out.stdout
