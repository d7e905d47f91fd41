"""Shared by the integration tests: a pytest run that dies by SIGKILL and its sweep; actionlint."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class KilledRun:
    """What a SIGKILLed run left: its directory, and the environment to sweep it with."""

    run_dir: Path
    env: dict[str, str]

    def sweep(self) -> None:
        """``reconverge janitor --sweep`` as the next run (or a person) would do it."""
        swept = subprocess.run(
            [sys.executable, "-m", "harness.cli", "janitor", "--sweep"],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )
        assert swept.returncode == 0, swept.stderr


@pytest.fixture
def short_run_root() -> Iterator[Path]:
    """A run root for a child run, short enough for its shims' unix sockets.

    Why not ``tmp_path``: pytest's ``/tmp/pytest-of-root/pytest-<N>/<test name>/`` grows with
    N and the test name, and a shim's control socket under it passes the 108-byte limit.
    """
    root = Path(tempfile.mkdtemp(prefix="rcvt", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def killed_run(tmp_path: Path, short_run_root: Path) -> Callable[[str], KilledRun]:
    """Run a one-test pytest module (which must SIGKILL itself) under its own run root."""

    def run(module: str) -> KilledRun:
        root = short_run_root
        (tmp_path / "test_killed.py").write_text(textwrap.dedent(module))
        env = {**os.environ, "RECONVERGE_RUN_ROOT": str(root)}
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
            cwd=tmp_path,
        )
        assert out.returncode == -signal.SIGKILL, out.stdout[-2000:] + out.stderr[-2000:]
        (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
        return KilledRun(run_dir, env)

    return run


@pytest.fixture(scope="module")
def actionlint(request: pytest.FixtureRequest) -> Path:
    """The cached actionlint binary, for every test that lints a workflow file
    (found, or failed/skipped per strictness, by ``tests/integration/actionlint_tool.py``)."""
    from tests.integration.actionlint_tool import find_actionlint

    return find_actionlint(request.config)
