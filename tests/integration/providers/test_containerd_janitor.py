"""containerd killed mid-test: the janitor still leaves nothing; restarts keep the task.

The killed case runs in a child pytest that starts a stub task and a socat relay, SIGKILLs
its containerd (the shim survives, as under systemd's KillMode=process) and then itself.
A sweep must remove the shim daemon, its task process, the relay and the run directory.
"""

from __future__ import annotations

import pytest

from harness import janitor
from harness.providers.containerd import STUB_RUNTIME
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd")

KILLED = """
import os, signal

def test_killed(containerd, ctd_namespace):
    rootfs = containerd.dir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    containerd.ctr(ctd_namespace, "run", "-d", "--null-io", "--runtime",
                   "io.containerd.stub.v2", "--rootfs", str(rootfs), "orphan")
    containerd.tcp_relay("grpc")
    containerd.kill()               # containerd dies mid-test; its shim lives on
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_containerd_killed_mid_test_then_sweep_leaves_nothing(killed_run):
    killed = killed_run(KILLED)
    run_dir = killed.run_dir
    left = janitor.pids_marked(run_dir.name)  # shim daemon, its task, the socat relay
    assert left, "the killed run should have left processes behind"
    killed.sweep()
    wait_for(
        lambda: janitor.pids_marked(run_dir.name),
        timeout=30,
        what="every process of the killed run gone after the sweep",
        accept=lambda pids: pids == [],
    )
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())
    assert janitor.mounts_under(run_dir.parent) == []


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "sigkill"])
def test_restart_reconnects_to_the_live_shim(kill, containerd, ctd_namespace):
    """containerd restarts on the same root and state and adopts the running task."""
    ns, cid = ctd_namespace, "survivor"
    rootfs = containerd.dir / "rootfs"
    rootfs.mkdir(exist_ok=True)
    containerd.ctr(
        ns, "run", "-d", "--null-io", "--runtime", STUB_RUNTIME, "--rootfs", str(rootfs), cid
    )
    containerd.restart(kill=kill)
    assert containerd.task_status(ns, cid) == "RUNNING"
    containerd.remove_task(ns, cid)
