"""A SIGKILLed run left something nobody can remove: the next runs still start and pass.

Issue 11's acceptance, on the machine: a run registers a file on a read-only tmpfs (the
shape of the real incident — EROFS under /sys/fs/cgroup — made on purpose), holds a real
toxiproxy, and SIGKILLs itself. Then either ``reconverge janitor --sweep`` (one line for
the file, exit 0 or 1, never a traceback) followed by the plumbing suite, or the plumbing
suite straight away (its own start-up sweep meets the file): the suite passes both ways,
and the toxiproxy the dead run held is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import janitor

pytestmark = pytest.mark.needs("toxiproxy")

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent / "reconverge"

KILLED = """
import os, signal

def test_dies_holding_an_unremovable_path(reconverge_run, toxiproxy):
    reconverge_run.janitor.path({path!r})
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def ro_file(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A file on a tmpfs remounted read-only: unlink says EROFS until it is unmounted."""
    if os.geteuid() != 0:
        why = "needs root to mount a read-only tmpfs"
        if request.config.getoption("reconverge_strict"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "pinned").write_text("x")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt / "pinned"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _servers(run_dir: Path) -> list[janitor.Resource]:
    procs = [r for r in janitor.load_resources(run_dir) if r.kind == "process"]
    assert procs, "the killed run registered its toxiproxy"
    return procs


def _plumbing(root: Path, artifacts: Path) -> subprocess.CompletedProcess[str]:
    """``./ci/suites -k plumbing`` without the bootstrap, strict, under ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "-k", "plumbing", "-q", "-p",
         "no:cacheprovider", "--reconverge-strict", f"--reconverge-artifacts={artifacts}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "RECONVERGE_RUN_ROOT": str(root)},
    )  # fmt: skip


def _assert_gone(servers: list[janitor.Resource]) -> None:
    for r in servers:
        assert not janitor.proc_is(int(r.data["pid"]), r.data.get("start")), r.describe()


def test_janitor_sweep_names_it_then_plumbing_passes(killed_run, ro_file, tmp_path):
    killed = killed_run(KILLED.format(path=str(ro_file)))
    servers = _servers(killed.run_dir)
    swept = subprocess.run(
        [str(BIN), "janitor", "--sweep"],
        capture_output=True,
        text=True,
        timeout=120,
        env=killed.env,
    )
    assert swept.returncode in (0, 1), swept.stdout + swept.stderr
    assert "Traceback" not in swept.stdout + swept.stderr, swept.stderr
    left = [line for line in swept.stdout.splitlines() if line.startswith("left ")]
    assert len(left) == 1, swept.stdout
    assert str(ro_file) in left[0] and "EROFS" in left[0], left
    _assert_gone(servers)
    assert ro_file.exists(), "the file really was unremovable"
    suite = _plumbing(killed.run_dir.parent, tmp_path / "artifacts")
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    assert "reconverge verdicts" in suite.stdout


def test_plumbing_passes_when_its_own_start_meets_it(killed_run, ro_file, tmp_path):
    killed = killed_run(KILLED.format(path=str(ro_file)))
    servers = _servers(killed.run_dir)
    suite = _plumbing(killed.run_dir.parent, tmp_path / "artifacts")
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    _assert_gone(servers)
    assert not killed.run_dir.exists(), "the start-up sweep dropped the dead run's record"
