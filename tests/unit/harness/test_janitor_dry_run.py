"""``reconverge janitor --dry-run`` lists what a sweep would undo and undoes none of it.

Real processes and directories: a run SIGKILLed with a registered server, an unregistered
stray carrying its run id, and an owned directory; plus a live run the sweep must skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness import janitor, run
from harness.wait import wait_for

BIN = Path(sys.executable).parent / "reconverge"

CHILD = r"""
import os, signal, subprocess, sys
from harness import run
r = run.start(purpose="killed")
sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
p = subprocess.Popen(sleep, env=r.child_env(), **quiet)
r.janitor.process(p.pid, name="server")
stray = subprocess.Popen(sleep, env=r.child_env(), **quiet)
r.janitor.path(sys.argv[1])
print(r.id, p.pid, stray.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    return janitor.proc_start_time(pid) is not None


def test_dry_run_lists_a_dead_runs_resources_and_removes_nothing(tmp_path: Path):
    root = tmp_path / "rcv"
    owned = tmp_path / "owned"
    owned.mkdir()
    (owned / "f").write_text("x")
    env = {**os.environ, "RECONVERGE_RUN_ROOT": str(root)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(owned)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    run_id, server, stray = child.stdout.split()
    live = root / "rlive0000"
    live.mkdir()
    me = {"pid": os.getpid(), "start": janitor.proc_start_time(os.getpid())}
    (live / "run.json").write_text(json.dumps(me))
    record = (root / run_id / "resources.jsonl").read_bytes()
    try:
        out = subprocess.run(
            [str(BIN), "janitor", "--dry-run"], capture_output=True, text=True, timeout=60, env=env
        )
        assert out.returncode == 0, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert f"would sweep {run_id}:" in lines, out.stdout
        assert f"  would stop process server pid {server} and its process group" in lines
        assert f"  would kill 1 stray process(es) [{stray}]" in lines, out.stdout
        assert f"  would remove {owned}" in lines, out.stdout
        assert any(x.startswith(f"  would remove run dir {root / run_id}") for x in lines)
        assert "rlive0000" not in out.stdout.replace("1 live run(s)", "")
        assert lines[-1].startswith("janitor: dry run: 1 dead run(s) would be swept")
        assert "1 live run(s) left alone" in lines[-1] and "nothing was removed" in lines[-1]
        # nothing was touched
        assert _alive(int(server)) and _alive(int(stray))
        assert (owned / "f").read_text() == "x"
        assert (root / run_id / "resources.jsonl").read_bytes() == record
        assert live.is_dir()
    finally:
        report = run.sweep(root=root)
        wait_for(
            lambda: not _alive(int(server)) and not _alive(int(stray)),
            timeout=15,
            what="server and stray stopped by the real sweep",
        )
    assert report.clean, report.failures
    assert not owned.exists() and not (root / run_id).exists()


def test_dry_run_of_an_empty_root_says_so(tmp_path: Path):
    out = subprocess.run(
        [str(BIN), "janitor", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RECONVERGE_RUN_ROOT": str(tmp_path / "none")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("janitor: dry run: 0 dead run(s) would be swept")


def test_dry_run_and_sweep_are_exclusive(tmp_path: Path):
    out = subprocess.run(
        [str(BIN), "janitor", "--dry-run", "--sweep"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RECONVERGE_RUN_ROOT": str(tmp_path)},
    )
    assert out.returncode == 2 and "not allowed" in out.stderr
