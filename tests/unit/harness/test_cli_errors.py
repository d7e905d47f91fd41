"""The command line: one clear line and exit 2 on bad input, never a traceback wall."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "reconverge"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_malformed_failpoint_env_is_one_line_and_exit_2():
    out = _run("doctor", env={"RECONVERGE_FAILPOINTS": "x=50%3*bogus("})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "bogus" in lines[0] and "column" in lines[0]
    assert "Traceback" not in out.stderr


def test_bad_repro_spec_is_one_line():
    out = _run("repro", "no-seed-here")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "<nodeid>@<seed>" in out.stderr


def test_janitor_sweep_reports_and_exits_0(tmp_path):
    out = _run("janitor", "--sweep", env={"RECONVERGE_RUN_ROOT": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "0 dead run(s) swept" in out.stdout


def test_missing_binary_in_doctor_names_the_fix(tmp_path):
    out = _run("doctor", env={"RECONVERGE_TOXIPROXY_BIN": str(tmp_path / "nope")})
    assert out.returncode == 2
    assert "toxiproxy" in out.stdout and "./ci/bootstrap" in out.stdout


def test_version_prints_the_installed_version(capsys):
    import pytest

    from harness.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("reconverge ") and out.strip() != "reconverge"
