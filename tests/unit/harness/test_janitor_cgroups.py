"""Cgroups: owned only under mounted cgroup filesystems, removed with what is inside them.

Why: the bench used to register ``rcv-<id>`` under every directory of /sys/fs/cgroup; on a
v1 host with an unmounted controller (perf_event) that directory sits on a read-only tmpfs
and its removal said EROFS. Now the bench asks the mount table, and the janitor refuses
anything else.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import janitor, run
from harness.wait import wait_for

BENCH = Path(__file__).resolve().parents[3] / "ci" / "bench.d" / "containerd.py"


def _need_root(request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0:
        why = "needs root (cgroups)"
        if request.config.getoption("reconverge_strict"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_containerd", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cgroup_mounts_come_from_mountinfo_only():
    table = dict(janitor.mount_table())
    mounts = janitor.cgroup_mounts()
    assert all(table[str(m)] in ("cgroup", "cgroup2") for m in mounts)
    unmounted = [
        d
        for d in Path("/sys/fs/cgroup").iterdir()
        if d.is_dir() and d not in mounts and table.get("/sys/fs/cgroup") != "cgroup2"
    ]
    for d in unmounted:
        assert janitor.cgroup_mount_of(d / "rcv-x") is None, d


def test_bench_registers_only_mounted_hierarchies(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path / "runs"))
    bench = _bench_module()
    r = run.start(purpose="bench-cgroups-test")
    try:
        parent = bench.own_cgroups(r)
        owned = janitor.load_resources(r.dir)
        assert parent == f"rcv-{r.id}"
        assert {res.kind for res in owned} == {"cgroup"}, owned
        paths = sorted(Path(res.data["path"]) for res in owned)
        assert paths == sorted(m / parent for m in set(janitor.cgroup_mounts()))
    finally:
        r.close()
    assert r.janitor.report is not None and r.janitor.report.failures == []


def test_a_cgroup_with_a_live_process_is_emptied_and_removed(tmp_path, request):
    """What a killed bench leaves: runc's container still running inside rcv-<id>/<cid>."""
    _need_root(request)
    mounts = janitor.cgroup_mounts()
    if not mounts:
        pytest.fail("no cgroup filesystem mounted", pytrace=False)
    mount = next((m for m in mounts if m.name == "pids"), mounts[0])
    top = mount / f"rcvtest-live-{os.getpid()}"
    j = janitor.Janitor("rtestlive", tmp_path)
    j.cgroup(top)
    (top / "task").mkdir(parents=True)
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (top / "task" / "cgroup.procs").write_text(str(p.pid))
        wait_for(
            lambda: str(p.pid) in (top / "task" / "cgroup.procs").read_text().split(),
            timeout=5,
            what="the sleeper inside the cgroup",
        )
        lines = j.cleanup()
        assert j.report is not None and j.report.failures == [], lines
        assert p.wait(timeout=10) is not None, "the process inside was killed"
        assert not top.exists()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for d in (top / "task", top):
            if d.exists():
                d.rmdir()
