"""The warm start path under the real containerd 1.6.20: launcher, fork server, forked daemon.

Every containerd a run starts execs the C launcher as ``containerd-shim-stub-v2``; the
run's fork server forks the daemon. These tests check what must hold for a forked daemon
to be indistinguishable from a cold one (its own session, no inherited fd of the server,
of containerd's pipes or of the request connection; failpoints from the environment
containerd passed; the same identity), the cold fallback when no server answers, and
that a SIGKILLed run's sweep removes the server and every daemon it forked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import janitor
from harness.checks import leaks
from harness.journal import merge
from harness.providers.containerd import Containerd
from harness.shim import identity, launcher, warm
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd")


def _run(c: Containerd, ns: str, cid: str) -> None:
    c.run_stub_task(ns, cid)


def _entry(run_dir: Path, ns: str, cid: str) -> dict[str, Any]:
    (entry,) = [
        e for e in leaks.registry(run_dir) if e.get("namespace") == ns and e.get("id") == cid
    ]
    return entry


def _serving(run_dir: Path, cid: str) -> dict[str, Any]:
    recs = [r for r in merge.load(run_dir) if r.event == "serving" and r.fields.get("id") == cid]
    assert recs, f"no 'serving' record of {cid}"
    return recs[-1].fields


def _fd_targets(pid: int) -> dict[int, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return out


def _socket_inodes_of(pid: int) -> set[str]:
    return {t for t in _fd_targets(pid).values() if t.startswith("socket:")}


def _stat(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2 :].split()


def _fork_server_pid(run_id: str) -> int:
    """The server among the run's ``rcv-shim-fork`` processes (the others: idle workers)."""
    named = [p for p in janitor.pids_marked(run_id) if identity.comm(p) == identity.FORK_NAME]
    (pid,) = [p for p in named if identity.ppid(p) not in named]
    return pid


def test_forked_daemon_is_isolated_like_a_cold_one(containerd, ctd_namespace, reconverge_run):
    ns, cid = ctd_namespace, "warm"
    server = _fork_server_pid(reconverge_run.id)
    _run(containerd, ns, cid)
    try:
        entry = _entry(reconverge_run.dir, ns, cid)
        pid = int(entry["pid"])
        assert _serving(reconverge_run.dir, cid)["forked"] is True
        assert identity.is_stub(pid) and identity.comm(pid) == identity.NAME
        assert identity.registry_of(pid, reconverge_run.dir) == (ns, cid)
        assert identity.run_of(pid) == reconverge_run.id
        _state, _ppid, pgrp, session = _stat(pid)[:4]
        assert int(pgrp) == pid and int(session) == pid, "own process group and session"
        assert _stat(server)[2:4] != [pgrp, session]
        fds = _fd_targets(pid)
        assert fds[0] == fds[1] == "/dev/null"
        assert fds[2].endswith(f"/{ns}/{cid}/log"), fds[2]  # the bundle's log FIFO
        assert not [t for t in fds.values() if t.startswith("pipe:")], fds  # containerd's pipes
        assert not _socket_inodes_of(pid) & _socket_inodes_of(server), fds
        # the task got the environment containerd passed to start, not the server's
        (task,) = [t for t in identity.task_procs(reconverge_run.id) if t.container_id == cid]
        env = identity.environ(task.pid)
        assert env["TTRPC_ADDRESS"] == f"{containerd.address}.ttrpc"
        assert env["GOMAXPROCS"] == "2"  # containerd 1.6 adds it for every shim it execs
        assert not {"TTRPC_ADDRESS", "GOMAXPROCS"} & set(identity.environ(server))
    finally:
        containerd.remove_task(ns, cid)


def test_failpoints_come_from_the_environment_containerd_passes(
    reconverge_run, monkeypatch, ctd_namespace
):
    """A containerd started with RECONVERGE_FAILPOINTS: its forked daemons obey it, although
    the fork server (started before, without it) never had it."""
    monkeypatch.setenv("RECONVERGE_FAILPOINTS", "shim.Pause.before=1*error(from env)")
    c = Containerd(reconverge_run, name="containerd-fpenv").start()
    ns, cid = ctd_namespace, "fpenv"
    try:
        _run(c, ns, cid)
        assert _serving(reconverge_run.dir, cid)["forked"] is True
        with pytest.raises(Exception, match="from env"):
            c.ctr(ns, "task", "pause", cid)
        c.ctr(ns, "task", "pause", cid)  # 1*: the second Pause applies
        assert c.task_status(ns, cid) == "PAUSED"
        c.remove_task(ns, cid)
        found = leaks.wait_until_clean(
            reconverge_run.dir, timeout=2.0, state_dir=c.state, namespace=ns
        )
        assert found == [], [str(f) for f in found]
    finally:
        c.stop()


def test_cold_fallback_when_no_fork_server_answers(reconverge_run, monkeypatch, ctd_namespace):
    absent = reconverge_run.dir / "absent.sock"
    monkeypatch.setattr(
        warm.WarmShim,
        "env",
        lambda self: {warm.ENV_SOCKET: str(absent), warm.ENV_COLD: str(warm.cold_binary())},
    )
    c = Containerd(reconverge_run, name="containerd-cold").start()
    ns, cid = ctd_namespace, "cold"
    try:
        _run(c, ns, cid)
        assert c.task_status(ns, cid) == "RUNNING"
        assert _serving(reconverge_run.dir, cid)["forked"] is False
        pid = int(_entry(reconverge_run.dir, ns, cid)["pid"])
        assert identity.comm(pid) == identity.NAME
        c.remove_task(ns, cid)
        found = leaks.wait_until_clean(
            reconverge_run.dir, timeout=2.0, state_dir=c.state, namespace=ns
        )
        assert found == [], [str(f) for f in found]
    finally:
        c.stop()


def test_launcher_finds_the_cold_shim_on_path_without_a_server(tmp_path):
    """No RECONVERGE_SHIM_FORK, no RECONVERGE_SHIM_COLD: the next containerd-shim-stub-v2
    on PATH that is not the launcher itself (the virtualenv's console script)."""
    binary = launcher.ensure()
    path = f"{binary.parent}:{warm.cold_binary().parent}:/usr/bin:/bin"
    env = {"PATH": path}
    out = subprocess.run(
        [str(binary), "-v"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "containerd-shim-stub-v2 (reconverge)\n"
    none = subprocess.run(
        [str(binary), "-v"],
        capture_output=True,
        text=True,
        env={"PATH": f"{binary.parent}:/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert none.returncode == 2
    assert none.stderr.strip() == (
        "containerd-shim-stub-v2: no fork server and no cold shim on PATH (fix: ./ci/bootstrap)"
    )


KILLED = """
import json, os, signal

def test_killed(containerd, ctd_namespace, reconverge_run):
    containerd.run_stub_task(ctd_namespace, "orphan")
    (reconverge_run.dir / "seen.json").write_text(json.dumps(
        [json.loads(p.read_text()) for p in (reconverge_run.dir / "shims").glob("*.json")]))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_run_sweep_removes_fork_server_and_forked_daemons(killed_run):
    killed = killed_run(KILLED)
    run_id = killed.run_dir.name
    try:
        (entry,) = json.loads((killed.run_dir / "seen.json").read_text())
        daemon = int(entry["pid"])
        server = _fork_server_pid(run_id)
        assert identity.is_stub(daemon)
        assert [r for r in merge.load(killed.run_dir) if r.event == "serving"][-1].fields[
            "forked"
        ] is True
        server_start = janitor.proc_start_time(server)
        assert server_start is not None
    finally:
        killed.sweep()
    wait_for(
        lambda: janitor.pids_marked(run_id),
        timeout=30,
        what="every process of the killed run gone after the sweep",
        accept=lambda pids: pids == [],
    )
    assert not identity.is_stub(daemon)
    assert not janitor.proc_is(server, server_start)  # gone (at most a zombie of init's)
    assert not [t for t in identity.task_procs() if t.shim_pid == daemon]
    assert not killed.run_dir.exists()


async def _pids_outcomes(socket_path: str, cid: str, n: int) -> list[str]:
    """``Pids`` asked ``n`` times on the shim's own socket: "ok" or the error message."""
    from harness.protos import shim_task_pb2
    from harness.ttrpc import Client, TTRPCError

    client = await Client.connect(f"unix://{socket_path}", timeout=5.0)
    out = []
    try:
        req = shim_task_pb2.PidsRequest(id=cid).SerializeToString()
        for _ in range(n):
            try:
                await client.call("containerd.task.v2.Task", "Pids", req, timeout=5.0)
                out.append("ok")
            except TTRPCError as exc:
                out.append(exc.message)
    finally:
        await client.close()
    return out


def test_probabilistic_failpoints_decide_alike_warm_and_cold(
    reconverge_run, monkeypatch, ctd_namespace
):
    """Same RECONVERGE_SEED, same 50% term: a forked daemon rolls the same dice as a cold
    one (nothing of the server's RNG state or registry carries over)."""
    import asyncio

    monkeypatch.setenv("RECONVERGE_FAILPOINTS", "shim.Pids.before=50%error(coin)")
    warm_c = Containerd(reconverge_run, name="containerd-dice-w").start()
    real_env = warm.WarmShim.env
    absent = reconverge_run.dir / "absent.sock"
    monkeypatch.setattr(
        warm.WarmShim,
        "env",
        lambda self: {**real_env(self), warm.ENV_SOCKET: str(absent)},
    )
    cold_c = Containerd(reconverge_run, name="containerd-dice-c").start()
    ns = ctd_namespace
    try:
        seen = {}
        for c, cid in ((warm_c, "dice-w"), (cold_c, "dice-c")):
            _run(c, ns, cid)
            seen[_serving(reconverge_run.dir, cid)["forked"]] = asyncio.run(
                _pids_outcomes(_entry(reconverge_run.dir, ns, cid)["socket"], cid, 24)
            )
            c.remove_task(ns, cid)
        assert set(seen) == {True, False}
        assert seen[True] == seen[False], seen
        assert set(seen[True]) == {"ok", "coin"}, seen
        for c in (warm_c, cold_c):
            found = leaks.wait_until_clean(
                reconverge_run.dir, timeout=2.0, state_dir=c.state, namespace=ns
            )
            assert found == [], [str(f) for f in found]
    finally:
        cold_c.stop()
        warm_c.stop()
