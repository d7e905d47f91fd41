"""The janitor undoes what a run registered, and never kills a recycled pid."""

from __future__ import annotations

import os
import subprocess
import sys

from harness import janitor
from harness.wait import wait_for


def _sleeper(env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def test_cleanup_stops_process_group_and_removes_paths(tmp_path):
    j = janitor.Janitor("rtest0001", tmp_path)
    p = _sleeper()
    j.process(p.pid, name="sleeper")
    d = tmp_path / "owned"
    d.mkdir()
    (d / "f").write_text("x")
    j.path(d)
    done = j.cleanup()
    assert p.wait(timeout=10) is not None
    assert not d.exists()
    assert any("stopped sleeper" in line for line in done)
    assert j.cleanup() == [], "cleanup must be idempotent"


def test_resources_file_replays_after_owner_loss(tmp_path):
    j = janitor.Janitor("rtest0002", tmp_path)
    p = _sleeper()
    j.process(p.pid, name="sleeper")
    loaded = janitor.load_resources(tmp_path)
    assert [r.kind for r in loaded] == ["process"]
    janitor.undo(loaded, "rtest0002", tmp_path)
    assert p.wait(timeout=10) is not None


def test_recycled_pid_is_not_killed(tmp_path):
    p = _sleeper()
    try:
        start = janitor.proc_start_time(p.pid)
        assert janitor.proc_is(p.pid, start)
        assert not janitor.proc_is(p.pid, (start or 0) + 1)
        res = janitor.Resource("process", {"pid": p.pid, "start": (start or 0) + 1, "name": "x"})
        janitor.undo([res], "rtest0003", tmp_path)
        assert p.poll() is None, "a process with another start time must survive"
    finally:
        p.kill()
        p.wait()


def test_marked_strays_are_found_and_killed(tmp_path):
    p = _sleeper({janitor.ENV_RUN_ID: "rtest0004"})
    wait_for(lambda: p.pid in janitor.pids_marked("rtest0004"), timeout=5, what="marker visible")
    janitor.undo([], "rtest0004", tmp_path)
    assert p.wait(timeout=10) is not None
    assert janitor.pids_marked("rtest0004") == []


def test_cleanup_leaves_other_children_exit_status_alone(tmp_path):
    """The janitor reaps what it killed, never a child someone else is about to wait on."""
    other = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    wait_for(lambda: janitor._is_zombie(other.pid), timeout=10, what="the other child exited")
    j = janitor.Janitor("rtest0005", tmp_path)
    p = _sleeper()
    j.process(p.pid, name="sleeper")
    j.cleanup()
    assert other.wait(timeout=10) == 3, "its exit status was stolen by the janitor's reaping"
    assert p.wait(timeout=10) is not None
