"""containerd killed mid-test: the janitor still leaves nothing; restarts keep the task.

The killed cases run in a child pytest that mounts a tmpfs as a task's rootfs (as a
snapshotter would), starts a stub task and a socat relay, then either SIGKILLs its
containerd (the shim survives, as under systemd's KillMode=process) and itself, or only
itself (containerd and the shim live on, orphaned). A sweep — ``reconverge janitor
--sweep``, what the next run does first — must leave no stub shim, task process,
containerd, socat relay, mount or run directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import janitor
from harness.checks import leaks
from harness.shim import identity
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd")

KILLED = """
import os, signal, subprocess

def test_killed(containerd, ctd_namespace):
    rootfs = containerd.dir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "rcv-rootfs", str(rootfs)], check=True)
    containerd.ctr(ctd_namespace, "run", "-d", "--null-io", "--runtime",
                   "io.containerd.stub.v2", "--rootfs", str(rootfs), "orphan")
    containerd.tcp_relay("grpc")
    if {kill_containerd}:
        containerd.kill()           # containerd dies mid-test; its shim lives on
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _what(pid: int) -> str:
    """Which kind of process a run left: containerd, shim, fork server, task, socat."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    if identity.is_stub(pid):
        return "shim"
    if identity.comm(pid) == identity.FORK_NAME:
        return "fork-server"  # the run's shim fork server (harness/shim/forkserver.py)
    name = os.path.basename(argv[0].decode(errors="replace"))
    if name in ("containerd", "socat"):
        return name
    return "task" if pid in {t.pid for t in identity.task_procs()} else name


def _left(run_id: str) -> dict[str, list[int]]:
    """Live processes of the run by kind (one that exits while we look is not left)."""
    out: dict[str, list[int]] = {}
    for pid in janitor.pids_marked(run_id):
        kind = _what(pid)
        if kind != "gone":
            out.setdefault(kind, []).append(pid)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs rootfs needs root")
@pytest.mark.parametrize(
    "kill_containerd", [True, False], ids=["containerd-then-run", "run-with-containerd-alive"]
)
def test_killed_mid_test_then_sweep_leaves_nothing(kill_containerd, killed_run):
    killed = killed_run(KILLED.format(kill_containerd=kill_containerd))
    run_dir = killed.run_dir
    try:
        left = _left(run_dir.name)
        expected = {"shim", "fork-server", "task", "socat"}
        expected |= set() if kill_containerd else {"containerd"}
        assert set(left) == expected, left
        assert janitor.mounts_under(run_dir), "the tmpfs rootfs should still be mounted"
    finally:
        killed.sweep()  # also when an expectation failed: this test must not leak either
    wait_for(
        lambda: _left(run_dir.name),
        timeout=30,
        what="every process of the killed run gone after the sweep",
        accept=lambda procs: procs == {},
    )
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())
    assert janitor.mounts_under(run_dir.parent) == []


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "sigkill"])
def test_restart_reconnects_to_the_live_shim(kill, containerd, ctd_namespace, reconverge_run):
    """containerd restarts on the same root and state and adopts the running task.

    The same shim daemon (same pid) must serve before and after: a new shim would mean
    containerd lost the task and started over, which is not a reconnect.
    """
    ns, cid = ctd_namespace, "survivor"
    containerd.run_stub_task(ns, cid)
    (shim,) = [e for e in leaks.registry(reconverge_run.dir) if e.get("namespace") == ns]
    old_pid = containerd.proc.pid
    containerd.restart(kill=kill)
    assert containerd.proc.pid != old_pid
    assert containerd.task_status(ns, cid) == "RUNNING"
    (after,) = [e for e in leaks.registry(reconverge_run.dir) if e.get("namespace") == ns]
    assert after["pid"] == shim["pid"] and leaks.shim_alive(int(shim["pid"])), (shim, after)
    containerd.remove_task(ns, cid)
    assert containerd.task_status(ns, cid) == "ABSENT"
