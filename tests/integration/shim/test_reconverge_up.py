"""``reconverge up``: the printed ctr line runs a task on the stub; Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import janitor
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd", "toxiproxy")


def test_up_prints_a_working_ctr_line_and_cleans_up_on_ctrl_c(short_run_root):
    env = {**os.environ, "RECONVERGE_RUN_ROOT": str(short_run_root)}
    up = subprocess.Popen(
        [str(Path(sys.executable).parent / "reconverge"), "up", "--namespace", "hand"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:

        def ready() -> bool:
            line = up.stdout.readline()
            lines.append(line)
            return "Ctrl-C" in line or up.poll() is not None

        wait_for(ready, timeout=60, what="reconverge up ready", interval=0)
        run_line = next(ln.strip() for ln in lines if " run -d " in ln)
        run_id = next(ln.split()[1] for ln in lines if ln.startswith("run "))
        ctr = shlex.split(run_line)
        base = ctr[: ctr.index("run")]
        subprocess.run(ctr, check=True, timeout=30)
        ls = subprocess.run([*base, "task", "ls"], check=True, capture_output=True, text=True)
        assert "RUNNING" in ls.stdout
        subprocess.run([*base, "task", "pause", "t1"], check=True, timeout=30)
        ls = subprocess.run([*base, "task", "ls"], check=True, capture_output=True, text=True)
        assert "PAUSED" in ls.stdout
        assert janitor.pids_marked(run_id), "containerd/shim should carry the run marker"
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, "".join(lines) + out
    assert "cleaned up" in out
    assert janitor.pids_marked(run_id) == []
    assert not (short_run_root / run_id).exists()
