"""The janitor is total: a resource it cannot remove is one line, and nothing else stops.

The failures are real, made on this machine as root: a tmpfs remounted read-only (EROFS),
an immutable file (EPERM), a cgroup that still holds the very process undoing it (EBUSY),
a docker daemon that is not there. The incident that motivated this: removing
``/sys/fs/cgroup/perf_event/rcv-<id>`` (an unmounted controller's directory on the
read-only v1 tmpfs) raised EROFS, and every later run's start-up sweep died on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import janitor, run

BIN = Path(sys.executable).parent / "reconverge"


def _need_root(request: pytest.FixtureRequest) -> None:
    """These tests mount and chattr; without root they skip (fail under strict)."""
    if os.geteuid() != 0:
        why = "needs root (mount, chattr, cgroups)"
        if request.config.getoption("reconverge_strict"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )


@pytest.fixture
def ro_fs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tmpfs holding ``file`` and an empty ``perf_event/`` directory, remounted read-only.

    Outside the run directory (like /sys/fs/cgroup is), so the janitor's unmount of
    mounts under its run directory does not make it removable.
    """
    _need_root(request)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "file").write_text("x")
        (mnt / "perf_event").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


def test_erofs_is_one_failure_and_everything_else_is_undone(ro_fs, run_dir, tmp_path):
    j = janitor.Janitor("rtestro01", run_dir)
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("proxy API went away")

    j.callback("ok-before", lambda: ran.append("ok-before"))
    j.callback("boom", boom)
    j.callback("ok-after", lambda: ran.append("ok-after"))
    p = _sleeper()
    j.process(p.pid, name="sleeper")
    first, last = tmp_path / "first", tmp_path / "last"
    first.mkdir()
    (first / "x").write_text("x")
    last.write_text("x")
    j.path(first)
    j.path(ro_fs / "file")
    j.path(last)

    lines = j.cleanup()  # must not raise

    assert p.wait(timeout=10) is not None, "the process was still stopped"
    assert not first.exists() and not last.exists(), "paths around the failure still removed"
    assert sorted(ran) == ["ok-after", "ok-before"], "callbacks around the failure still ran"
    report = j.report
    assert report is not None
    by_what = {f.what: f for f in report.failures}
    assert set(by_what) == {"callback boom", f"path {ro_fs / 'file'}"}, report.failures
    assert "RuntimeError: proxy API went away" in by_what["callback boom"].error
    assert by_what[f"path {ro_fs / 'file'}"].error.startswith("EROFS"), report.failures
    assert report.retry() == [], "a read-only file system does not heal by itself: no retry"
    assert sum(line.startswith("FAILED ") for line in lines) == 2, lines
    assert (ro_fs / "file").exists()


def test_the_incident_a_missing_dir_on_a_readonly_fs_is_done(ro_fs, run_dir):
    """unlink/rmdir of a name that does not exist on a read-only fs say EROFS, not ENOENT."""
    gone = ro_fs / "perf_event" / "rcv-rdead0001"
    with pytest.raises(OSError) as raised:
        os.rmdir(gone)
    assert raised.value.errno == 30, "the kernel answer the incident hit"
    report = janitor.undo_report([janitor.Resource("path", {"path": str(gone)})], "rx", run_dir)
    assert report.failures == [], "not found is done, whatever errno the fs gives"


def test_eperm_on_an_immutable_file_names_it(run_dir, tmp_path, request):
    _need_root(request)
    f = tmp_path / "immutable"
    f.write_text("x")
    subprocess.run(["chattr", "+i", str(f)], check=True)
    try:
        other = tmp_path / "other"
        other.write_text("x")
        resources = [janitor.Resource("path", {"path": str(p)}) for p in (f, other)]
        report = janitor.undo_report(resources, "rtesteperm", run_dir)
        assert [(x.what, x.error.split()[0]) for x in report.failures] == [(f"path {f}", "EPERM")]
        assert not other.exists()
        assert report.retry() == []
    finally:
        subprocess.run(["chattr", "-i", str(f)], check=False)


def _pids_mount() -> Path:
    """A cgroup hierarchy to move this process into: v1 ``pids``, else a cgroup2 mount."""
    mounts = janitor.cgroup_mounts()
    fstype = dict(janitor.mount_table())
    for pick in (lambda m: m.name == "pids", lambda m: fstype.get(str(m)) == "cgroup2"):
        for mount in mounts:
            if pick(mount):
                return mount
    pytest.fail(f"no pids or cgroup2 hierarchy mounted (have {mounts})", pytrace=False)


def _own_cgroup_in(mount: Path) -> Path:
    """This process's current cgroup in the hierarchy mounted at ``mount``."""
    cgroup2 = dict(janitor.mount_table()).get(str(mount)) == "cgroup2"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, controllers, rel = line.split(":", 2)
        if (cgroup2 and controllers == "") or (
            not cgroup2 and set(controllers.split(",")) == set(mount.name.split(","))
        ):
            return mount / rel.lstrip("/")
    pytest.fail(f"not in any cgroup of {mount}", pytrace=False)


def test_ebusy_cgroup_is_kept_for_retry_then_removed(run_dir, request):
    """A cgroup that still holds the undoing process: EBUSY, named, kept, then removed."""
    _need_root(request)
    mount = _pids_mount()
    home = _own_cgroup_in(mount)
    cg = mount / f"rcvtest-{os.getpid()}"
    j = janitor.Janitor("rtestbusy", run_dir)
    j.cgroup(cg / "child")
    j.cgroup(cg)
    (cg / "child").mkdir(parents=True)
    try:
        (cg / "child" / "cgroup.procs").write_text(str(os.getpid()))
        report = janitor.undo_report(list(reversed(janitor.load_resources(run_dir))), "r", run_dir)
        assert len(report.failures) == 2, report.failures
        for failure in report.failures:
            assert failure.error.startswith("EBUSY"), failure
            assert "(this process)" in failure.error, failure
            assert failure.retry
        retry = report.retry()
        assert [r.data["attempts"] for r in retry] == [1, 1]
        assert cg.is_dir(), "nothing else removed the cgroup"
    finally:
        (home / "cgroup.procs").write_text(str(os.getpid()))
    again = janitor.undo_report(list(reversed(retry)), "r", run_dir)
    assert again.failures == [], again.failures
    assert not cg.exists()


def test_retry_is_capped(run_dir):
    """After MAX_ATTEMPTS sweeps a retryable failure is reported as given up."""
    res = janitor.Resource(
        "container",
        {"id": "deadbeef0000", "docker_host": "unix:///nonexistent/docker.sock", "attempts": 0},
    )
    first = janitor.undo_report([res], "rtestdock", run_dir)
    assert len(first.failures) == 1 and first.failures[0].retry, first.failures
    assert "container deadbeef0000" in first.failures[0].line()
    kept = first.retry()
    assert [r.data["attempts"] for r in kept] == [1]
    kept[0].data["attempts"] = janitor.MAX_ATTEMPTS - 1
    last = janitor.undo_report(kept, "rtestdock", run_dir)
    assert not last.failures[0].retry and last.retry() == []
    assert "given up" in last.failures[0].line()


def test_cgroup_registration_refuses_what_no_cgroup_fs_holds(ro_fs, run_dir):
    j = janitor.Janitor("rtestcg", run_dir)
    with pytest.raises(ValueError, match="not inside a mounted cgroup filesystem"):
        j.cgroup(ro_fs / "perf_event" / "rcv-rtestcg")
    assert janitor.load_resources(run_dir) == []
    for mount in janitor.cgroup_mounts():
        assert janitor.cgroup_mount_of(mount / "rcv-x") == mount
        assert janitor.cgroup_mount_of(mount) is None, "the mount itself is no cgroup to own"


# -- the sweep: never raises, keeps only what can be retried, never blocks a start ----------


def _dead_run(root: Path, name: str, resources: list[janitor.Resource]) -> Path:
    """A run directory whose owner is gone (a pid that has exited)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    d = root / name
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": name, "pid": gone.pid, "start": 1}))
    janitor.save_resources(d, resources)
    return d


def test_sweep_reports_erofs_drops_the_record_and_the_next_run_starts(ro_fs, tmp_path, monkeypatch):
    root = tmp_path / "root"
    ok = tmp_path / "ok"
    ok.mkdir()
    p = _sleeper()
    resources = [
        janitor.Resource("process", {"pid": p.pid, "start": janitor.proc_start_time(p.pid),
                                     "name": "server", "group": True}),
        janitor.Resource("path", {"path": str(ro_fs / "file")}),
        janitor.Resource("path", {"path": str(ok)}),
    ]  # fmt: skip
    dead = _dead_run(root, "rdead0001", resources)
    report = run.sweep(root=root)
    assert len(report.failures) == 1, report
    assert str(ro_fs / "file") in report.failures[0] and "EROFS" in report.failures[0]
    assert p.wait(timeout=10) is not None and not ok.exists()
    assert not dead.exists(), "nothing retryable is left, so the record goes"
    assert run.sweep(root=root).clean, "a second sweep finds nothing"
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(root))
    r = run.start(purpose="after-erofs")
    try:
        assert r.dir.is_dir()
    finally:
        r.close()


def test_sweep_keeps_a_retryable_record_until_it_gives_up(tmp_path):
    root = tmp_path / "root"
    container = janitor.Resource(
        "container", {"id": "cafe00000000", "docker_host": "unix:///nonexistent/docker.sock"}
    )
    dead = _dead_run(root, "rdead0002", [container])
    for attempt in range(1, janitor.MAX_ATTEMPTS + 1):
        report = run.sweep(root=root)
        assert len(report.failures) == 1 and "container cafe00000000" in report.failures[0]
        if attempt < janitor.MAX_ATTEMPTS:
            assert dead.is_dir(), f"kept for retry after attempt {attempt}"
            assert [r.data["attempts"] for r in janitor.load_resources(dead)] == [attempt]
    assert "given up" in report.failures[0]
    assert not dead.exists()


def test_sweep_survives_garbage_records(tmp_path):
    root = tmp_path / "root"
    bad = root / "rgarbage1"
    bad.mkdir(parents=True)
    (bad / "run.json").write_text(json.dumps({"pid": "not-a-pid"}))
    (bad / "resources.jsonl").write_text('[1,2]\n{"kind":"path"}\n{"kind":"martian","x":1}\n')
    old = os.stat(bad).st_mtime - 120
    os.utime(bad, (old, old))
    report = run.sweep(root=root)  # must not raise
    assert report.runs and "rgarbage1" in report.runs[0], report
    assert any("martian" in line for line in report.failures), report.failures


def test_cli_sweep_one_line_per_failure_exit_1_then_0(ro_fs, tmp_path):
    root = tmp_path / "root"
    _dead_run(root, "rdead0003", [janitor.Resource("path", {"path": str(ro_fs / "file")})])
    env = {**os.environ, "RECONVERGE_RUN_ROOT": str(root)}
    out = subprocess.run(
        [str(BIN), "janitor", "--sweep"], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    left = [line for line in out.stdout.splitlines() if line.startswith("left ")]
    assert len(left) == 1 and str(ro_fs / "file") in left[0] and "EROFS" in left[0], out.stdout
    again = subprocess.run(
        [str(BIN), "janitor", "--sweep"], capture_output=True, text=True, timeout=60, env=env
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 dead run(s) swept" in again.stdout


def test_a_resource_failing_in_two_steps_is_kept_once():
    res = janitor.Resource("path", {"path": "/x"})
    report = janitor.UndoReport()
    report.fail("mount /x", OSError(16, "Device or resource busy"), res, retry=True)
    report.fail("path /x", OSError(16, "Device or resource busy"), res, retry=True)
    assert [line.split(":")[0] for line in report.lines()] == ["FAILED mount /x", "FAILED path /x"]
    assert [r.data for r in report.retry()] == [{"path": "/x", "attempts": 1}]
