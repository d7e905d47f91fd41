"""``reconverge run`` stopped with SIGTERM takes its pytest, containerd and shims with it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.checks import leaks
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd", "toxiproxy")

ROOT = Path(__file__).resolve().parents[3]


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in leaks.children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_sigterm_stops_the_whole_tree(tmp_path):
    parent = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/reconverge"),
            "run",
            "--artifacts",
            str(tmp_path),
            "suites/test_seed_a_pause_resume.py",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        tree = wait_for(
            lambda: _descendants(parent.pid),
            timeout=60,
            what="a containerd under reconverge run",
            accept=lambda pids: any("containerd --config" in _cmd(p) for p in pids),
        )
        os.kill(parent.pid, signal.SIGTERM)
        _, err = parent.communicate(timeout=60)
        assert parent.returncode == 130, err[-2000:]
        left = wait_for(
            lambda: [p for p in tree if Path(f"/proc/{p}").exists() and _cmd(p)],
            timeout=10,
            what="every process of the run gone",
            accept=lambda alive: not alive,
        )
        assert left == []
    finally:
        if parent.poll() is None:
            parent.kill()
