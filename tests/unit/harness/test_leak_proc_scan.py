"""The leak detector's /proc scan and its budget, on real processes (no containerd).

A "daemon" here is a real process that took the stub's identity (``identity.set_name()``,
the run's ``RECONVERGE_RUN_ID``, a working directory shaped like a containerd bundle), so
the detector sees exactly what it sees of a real shim without containerd having to start
one. What is checked: a daemon without a registry entry is found and attributed by its
bundle, also when it was forked from a warm parent whose argv and environ it shares (issue
14's fork server); a task process whose daemon died is found by its marker; a registered
daemon that exits inside the budget is not a leak, one that stays is, with its detection
latency; and a probe that cannot answer (a silent containerd socket, a live shim that never answers
``Connect``) raises Unobservable within the budget instead of hanging or reading as a leak.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.checks import leaks
from harness.journal import merge
from harness.run import Run
from harness.shim import identity
from harness.verdict import Unobservable
from harness.wait import wait_for

TASK_STATE = "io.containerd.runtime.v2.task"

#: A stub-like daemon: takes the identity, optionally spawns a marked task, reports its
#: pids on stdout, then exits after ``exit_after`` seconds (the slow exit under test) or
#: when its stdin closes.
DAEMON = r"""
import os, sys, time
from harness.shim import identity
identity.set_name()
ns, cid, exit_after, spawn_task = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
task = 0
if spawn_task:
    env = dict(os.environ) | identity.task_marker(ns, cid)
    task = os.posix_spawnp("sleep", ["sleep", "1000000"], env, setsid=True)
print(os.getpid(), task, flush=True)
if exit_after >= 0:
    time.sleep(exit_after)  # the slow exit this test is about, not synchronisation
else:
    sys.stdin.read()
"""


@pytest.fixture
def spawn_daemon(
    reconverge_run: Run, tmp_path: Path
) -> Iterator[Callable[..., tuple[subprocess.Popen, int]]]:
    """Start a fake daemon in a bundle-shaped cwd; returns (process, task pid or 0)."""
    procs: list[subprocess.Popen] = []
    tasks: list[int] = []

    def spawn(
        ns: str, cid: str, *, exit_after: float = -1, task: bool = False
    ) -> tuple[subprocess.Popen, int]:
        bundle = tmp_path / "state" / TASK_STATE / ns / cid
        bundle.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen(
            [sys.executable, "-c", DAEMON, ns, cid, str(exit_after), "1" if task else "0"],
            cwd=bundle,
            env=reconverge_run.child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        reconverge_run.janitor.process(p.pid, name=f"fake-shim-{cid}", group=False)
        procs.append(p)
        assert p.stdout is not None
        pid, task_pid = map(int, p.stdout.readline().split())
        if task_pid:
            tasks.append(task_pid)
        wait_for(lambda: identity.is_stub(pid), timeout=5, what=f"{pid} named {identity.NAME}")
        return p, task_pid

    yield spawn
    for p in procs:
        p.kill()
        p.wait()
    marked = {t.pid for t in identity.task_procs(reconverge_run.id)}
    for t in set(tasks) & marked:  # only a process still carrying our marker: no pid reuse
        with contextlib.suppress(ProcessLookupError):
            os.kill(t, signal.SIGKILL)


def _register(run: Run, pid: int, ns: str, cid: str, socket_path: str) -> Path:
    """A registry entry as the daemon writes it (pid and its start time included)."""
    d = run.path("shims", mkdir=True)
    f = d / f"{cid}.json"
    entry = {
        "id": cid,
        "namespace": ns,
        "pid": pid,
        "pid_start": identity.start_ticks(pid),
        "socket": socket_path,
    }
    f.write_text(json.dumps(entry))
    return f


def test_identity_is_the_name_not_the_cmdline(spawn_daemon, reconverge_run):
    p, _ = spawn_daemon("ns-id", "c0")
    assert identity.comm(p.pid) == identity.NAME
    assert b"harness.shim.daemon" not in Path(f"/proc/{p.pid}/cmdline").read_bytes()
    assert identity.is_stub(p.pid) and not identity.is_stub(os.getpid())
    assert identity.run_of(p.pid) == reconverge_run.id
    assert p.pid in identity.stub_pids(reconverge_run.id)
    assert p.pid not in identity.stub_pids("r-someone-else")
    assert identity.bundle_of(p.pid) == ("ns-id", "c0")
    assert identity.registry_of(p.pid, reconverge_run.dir) is None
    _register(reconverge_run, p.pid, "ns-id", "c0", "/nonexistent.sock")
    assert identity.registry_of(p.pid, reconverge_run.dir) == ("ns-id", "c0")


#: A warm parent (issue 14's fork server, in miniature): names itself rcv-shim-fork, forks a
#: child that moves into its bundle and names itself rcv-shim — argv and environ inherited.
FORK_SERVER = r"""
import os, sys
from harness.shim import identity
identity.set_name(identity.FORK_NAME)
pid = os.fork()
if pid == 0:
    os.chdir(sys.argv[1])
    identity.set_name()
    print(os.getpid(), flush=True)
    sys.stdin.read()
    os._exit(0)
sys.stdin.read()
os.kill(pid, 9)
os.waitpid(pid, 0)
"""


def test_a_daemon_forked_from_a_warm_parent_is_recognised(reconverge_run, tmp_path):
    bundle = tmp_path / "state" / TASK_STATE / "ns-f" / "forked"
    bundle.mkdir(parents=True)
    p = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER, str(bundle)],
        env=reconverge_run.child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    reconverge_run.janitor.process(p.pid, name="fork-server", group=False)
    child = 0
    try:
        assert p.stdout is not None
        child = int(p.stdout.readline())
        wait_for(lambda: identity.comm(p.pid) == identity.FORK_NAME, timeout=5, what="named")
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes()
        assert Path(f"/proc/{child}/cmdline").read_bytes() == cmdline  # argv says nothing
        assert identity.is_stub(child) and not identity.is_stub(p.pid)
        assert identity.stub_pids(reconverge_run.id) == [child]
        assert identity.run_of(child) == reconverge_run.id  # inherited from the server
        found = leaks.find_leaks(reconverge_run.dir, namespace="ns-f")
        assert [(f.kind, f.container_id, f.pid) for f in found] == [
            ("shim-unregistered", "forked", child)
        ], found
        _register(reconverge_run, child, "ns-f", "forked", "/nonexistent.sock")
        assert identity.registry_of(child, reconverge_run.dir) == ("ns-f", "forked")
    finally:
        p.kill()  # the server is gone; its child too (below), as a sweep would do
        p.wait()
        if child and identity.is_stub(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_a_daemon_of_an_older_stub_is_known_by_its_cmdline(reconverge_run):
    """Fallback only: a daemon that never named itself (started by an older stub, or still
    importing) still has ``harness.shim.daemon`` in its argv."""
    p = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "-m", "harness.shim.daemon"],
        env=reconverge_run.child_env(),
        stdin=subprocess.PIPE,
    )
    reconverge_run.janitor.process(p.pid, name="legacy-shim", group=False)
    try:
        wait_for(
            lambda: b"harness.shim.daemon" in Path(f"/proc/{p.pid}/cmdline").read_bytes(),
            timeout=5,
            what="the legacy daemon's argv",
        )
        assert identity.comm(p.pid) != identity.NAME
        assert identity.is_stub(p.pid)
        assert p.pid in identity.stub_pids(reconverge_run.id)
    finally:
        p.kill()
        p.wait()
    assert not identity.is_stub(p.pid)


def test_a_daemon_without_a_registry_entry_is_found(spawn_daemon, reconverge_run):
    p, _ = spawn_daemon("ns-u", "ghost")
    found = leaks.find_leaks(reconverge_run.dir, namespace="ns-u", test="t::ghost")
    assert [(f.kind, f.namespace, f.container_id, f.pid) for f in found] == [
        ("shim-unregistered", "ns-u", "ghost", p.pid)
    ], found
    assert "no registry entry" in found[0].evidence and "t::ghost" in str(found[0])
    # another namespace's check does not blame this test; a registered daemon is not this kind
    assert leaks.find_leaks(reconverge_run.dir, namespace="ns-other") == []
    _register(reconverge_run, p.pid, "ns-u", "ghost", "/nonexistent.sock")
    kinds = {f.kind for f in leaks.find_leaks(reconverge_run.dir, namespace="ns-u")}
    assert kinds == {"shim-process"}, kinds


def test_a_task_whose_daemon_died_is_an_orphan(spawn_daemon, reconverge_run):
    p, task = spawn_daemon("ns-o", "orph", task=True)
    assert task and identity.comm(task) == "sleep"
    alive = leaks.find_leaks(reconverge_run.dir, namespace="ns-o")
    assert "task-orphan" not in {f.kind for f in alive}, alive  # its daemon lives
    p.kill()  # a panic: the daemon dies without killing its task
    p.wait()
    found = leaks.find_leaks(reconverge_run.dir, namespace="ns-o")
    orphans = [f for f in found if f.kind == "task-orphan"]
    assert [(f.namespace, f.container_id, f.pid) for f in orphans] == [("ns-o", "orph", task)]
    assert f"shim pid {p.pid} is gone" in orphans[0].evidence
    # reaping the finding kills the orphan; the next probe is clean
    assert leaks.reap_findings(orphans) == [task]
    wait_for(lambda: not identity.task_procs(reconverge_run.id), timeout=5, what="orphan gone")
    assert leaks.find_leaks(reconverge_run.dir, namespace="ns-o") == []


def test_a_slow_exit_inside_the_budget_is_not_a_leak(spawn_daemon, reconverge_run):
    p, _ = spawn_daemon("ns-s", "slow", exit_after=0.4)
    _register(reconverge_run, p.pid, "ns-s", "slow", "/nonexistent.sock")
    assert [f.kind for f in leaks.find_leaks(reconverge_run.dir, namespace="ns-s")] == [
        "shim-process"
    ]
    t0 = time.monotonic()
    assert leaks.wait_until_clean(reconverge_run.dir, timeout=2.0, namespace="ns-s") == []
    took = time.monotonic() - t0
    assert took < 1.5, f"clean as soon as the shim exited, not at the budget's end: {took:.2f}s"


def test_a_shim_that_stays_is_a_leak_with_its_detection_latency(spawn_daemon, reconverge_run):
    removed = time.monotonic()
    p, _ = spawn_daemon("ns-l", "stays")
    _register(reconverge_run, p.pid, "ns-l", "stays", "/nonexistent.sock")
    t0 = time.monotonic()
    found = leaks.wait_until_clean(
        reconverge_run.dir, timeout=0.5, namespace="ns-l", test="t::stays", removed_at=removed
    )
    took = time.monotonic() - t0
    assert [(f.kind, f.container_id, f.pid) for f in found] == [("shim-process", "stays", p.pid)]
    f = found[0]
    assert f.latency_from == "removal"
    assert f.latency is not None and 0 <= f.latency <= t0 - removed + 0.3, f.latency
    assert 0.5 <= took < 0.5 + leaks.MIN_PROBE_S + 0.5, took  # persisted for the whole budget
    assert "does not serve" in f.evidence and f"pid {p.pid}" in str(f) and "detected" in str(f)
    records = merge.find(reconverge_run.dir, after=t0, component="leaks", event="leak")
    assert records and records[-1].fields["id"] == "stays", records
    assert records[-1].fields["test"] == "t::stays"


@pytest.fixture
def silent_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that accepts connections (backlog) but never says a word."""
    path = tmp_path / "silent.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    yield path
    s.close()


def test_a_silent_containerd_is_unobservable_within_the_budget(reconverge_run, silent_socket):
    t0 = time.monotonic()
    with pytest.raises(Unobservable, match=r"did not answer Tasks\.List"):
        leaks.wait_until_clean(
            reconverge_run.dir, timeout=0.3, namespace="ns-x", containerd_address=silent_socket
        )
    took = time.monotonic() - t0
    assert took < 0.3 + leaks.MIN_PROBE_S + 0.7, f"a probe blocked past the budget: {took:.2f}s"


def test_a_live_shim_that_never_answers_is_unobservable(
    spawn_daemon, reconverge_run, silent_socket
):
    p, _ = spawn_daemon("ns-h", "hung")
    _register(reconverge_run, p.pid, "ns-h", "hung", str(silent_socket))
    t0 = time.monotonic()
    with pytest.raises(Unobservable, match=rf"shim pid {p.pid} of ns-h/hung .*Connect"):
        leaks.wait_until_clean(reconverge_run.dir, timeout=0.3, namespace="ns-h")
    took = time.monotonic() - t0
    assert took < 0.3 + leaks.MIN_PROBE_S + 0.7, f"a probe blocked past the budget: {took:.2f}s"


NODE = "3f" * 32


@pytest.mark.parametrize(
    "text",
    [
        f"0::/system.slice/docker-{NODE}.scope/kubelet.slice/kubepods\n",  # v2, systemd driver
        f"12:pids:/docker/{NODE}/kubelet/kubepods/pod1\n0::/\n",  # v1, cgroupfs driver
    ],
)
def test_the_node_container_of_a_daemon_comes_from_its_cgroup(text):
    assert identity.container_in_cgroup(text) == NODE


def test_a_host_process_is_in_no_container():
    assert identity.container_in_cgroup("0::/user.slice/session-1.scope\n") is None
    assert identity.container_in_cgroup("4:memory:/process_api/4d354ba1f229fe08\n") is None
    assert identity.container_of(2**22 + 7) is None  # no such pid
