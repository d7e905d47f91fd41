"""A SIGKILLed run leaves a record that the next run's sweep cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from harness import janitor, run
from harness.wait import wait_for

CHILD = r"""
import os, signal, subprocess, sys
from harness import run
r = run.start(purpose="killed")
p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True, env=r.child_env(),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r.janitor.process(p.pid, name="server")
stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True, env=r.child_env(),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(r.id, p.pid, stray.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sweep_cleans_a_sigkilled_run(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RECONVERGE_RUN_ROOT": str(tmp_path)},
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    run_id, server, stray = out.stdout.split()
    assert (tmp_path / run_id).is_dir()
    assert janitor.proc_start_time(int(server)) is not None
    report = run.sweep(root=tmp_path)
    assert len(report.runs) == 1 and run_id in report.runs[0], report
    assert report.clean, report.failures
    wait_for(
        lambda: (
            janitor.proc_start_time(int(server)) is None
            and janitor.proc_start_time(int(stray)) is None
        ),
        timeout=10,
        what="server and stray gone",
    )
    assert not (tmp_path / run_id).exists()


def test_sweep_leaves_live_runs_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path))
    r = run.start(purpose="live")
    try:
        report = run.sweep(root=tmp_path)
        assert report.runs == [] and report.clean, report
        assert r.dir.is_dir()
    finally:
        r.close()
    assert not r.dir.exists()
