"""The sandbox checkers tell gone from unreadable, and converged from "converged for now".

Truth sources here are real where that is cheap (a process that looks like a shim daemon
but never answers, a containerd socket that does not exist); the reconciler is a stand-in
host (its snapshot is what the checker reads), and for the convergence tests the shim's
answer is patched in this module only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.checks import sandbox as chk
from harness.reconciler.sandbox import bugs
from harness.reconciler.sandbox.reconciler import Write
from harness.reconciler.sandbox.timing import Timing
from harness.shim import identity
from harness.verdict import Outcome, Unobservable, decide
from harness.wait import wait_for

NS, SID = "ns", "sb"


def _register(run_dir: Path, pid: int, sock: Path) -> None:
    d = run_dir / "shims"
    d.mkdir(parents=True, exist_ok=True)
    entry = {"namespace": NS, "id": SID, "pid": pid, "socket": str(sock)}
    (d / "x.json").write_text(json.dumps(entry))


@pytest.fixture
def mute_shim(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A live process named as a stub daemon is, registered with a socket that never answers."""
    run_dir = tmp_path / "run"
    sock_path = Path(f"/tmp/rcv-mute-{time.monotonic_ns()}.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(8)  # accepts connections, never reads or replies
    named = "from harness.shim import identity; import time; identity.set_name(); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", named])
    try:
        _register(run_dir, proc.pid, sock_path)
        wait_for(lambda: identity.is_stub(proc.pid), timeout=10, what="the stand-in named itself")
        yield run_dir, proc.pid
    finally:
        proc.kill()
        proc.wait(5)
        listener.close()
        sock_path.unlink(missing_ok=True)


def test_no_registered_shim_is_gone(tmp_path: Path) -> None:
    assert chk.shim_status(tmp_path, NS, SID) == chk.GONE


def test_a_dead_shim_process_is_gone(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(5)
    _register(tmp_path, proc.pid, tmp_path / "none.sock")
    assert chk.shim_status(tmp_path, NS, SID) == chk.GONE


def test_a_live_shim_that_does_not_answer_is_unobservable(mute_shim) -> None:
    run_dir, pid = mute_shim
    with pytest.raises(Unobservable, match=f"pid {pid}"):
        chk.shim_status(run_dir, NS, SID, timeout=0.3)


def test_leak_check_with_containerd_unreachable_is_unobservable_not_leaked(tmp_path) -> None:
    finding = chk.leak(
        tmp_path,
        address=tmp_path / "no-containerd.sock",
        state_dir=tmp_path / "state",
        namespace=NS,
        sids=[SID],
        timeout=0.3,
    )
    assert not finding.observed, finding
    outcome, _ = decide(
        variant="buggy", findings=[finding], fired={"f": 1}, symptom=lambda f: "leak"
    )
    assert outcome is Outcome.INCONCLUSIVE


# -- convergence through a stand-in host ------------------------------------------------------
@dataclass
class Host:
    """What ``convergence`` reads of a reconciler host: snapshot, namespace, timing."""

    view: dict[str, Any]
    timing: Timing = field(default_factory=lambda: Timing().scaled(0.05))
    namespace: str = NS
    writes: list[Write] = field(default_factory=list)
    busy: dict[str, Any] = field(default_factory=dict)
    on_snapshot: Any = None
    ticks: int = 0

    def snapshot(self) -> dict[str, Any]:
        if self.on_snapshot is not None:
            self.on_snapshot(self)
        return {
            "view": {k: dict(v) for k, v in self.view.items()},
            "busy": dict(self.busy),
            "writes": list(self.writes),
            "generation": 0,
        }

    def deadgc_tick(self) -> None:
        self.ticks += 1


def _view(state: str) -> dict[str, Any]:
    return {
        "state": state,
        "pausing_at": 0,
        "runtime_snapshot_id": "x",
        "restore_snapshot_id": "x",
    }


def _converge(host: Host, run_dir: Path, **kw: Any) -> Any:
    return chk.convergence(
        host, run_dir, [SID], since=time.monotonic(), horizon=0.5, timeout=5, **kw
    )  # type: ignore[arg-type]


def test_a_paused_view_over_a_dead_shim_is_not_converged(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(chk, "shim_status", lambda *a, **k: chk.GONE)
    f = _converge(Host({SID: _view("PAUSED")}), tmp_path)
    assert not f.ok and f.observed and "shim is gone" in f.symptom, f


def test_a_running_view_over_a_stopped_task_is_not_converged(tmp_path, monkeypatch) -> None:
    """The task exited (its Delete still owed): the exit never reached a RUNNING view."""
    monkeypatch.setattr(chk, "shim_status", lambda *a, **k: chk.STOPPED)
    f = _converge(Host({SID: _view("RUNNING")}), tmp_path)
    assert not f.ok and f.observed and "shim is stopped" in f.symptom, f


def test_an_exited_view_over_a_stopped_task_converges(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(chk, "shim_status", lambda *a, **k: chk.STOPPED)
    f = _converge(Host({SID: _view("EXITED")}), tmp_path)
    assert f.ok, f


def test_an_unreadable_shim_for_the_whole_window_is_unobservable(tmp_path, monkeypatch) -> None:
    def mute(*a: Any, **k: Any) -> str:
        raise Unobservable("shim alive but State timed out")

    monkeypatch.setattr(chk, "shim_status", mute)
    host = Host({SID: _view("PAUSED")})
    f = chk.convergence(host, tmp_path, [SID], since=time.monotonic(), horizon=0.2, timeout=0.6)  # type: ignore[arg-type]
    assert not f.observed, f


def test_a_wrong_write_inside_the_hold_window_diverges_naming_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(chk, "shim_status", lambda *a, **k: "RUNNING")
    host = Host({SID: _view("RUNNING")})
    start = time.monotonic()

    def late_probe(h: Host) -> None:  # a DeadGC probe 0.3 s after quiescence marks it unknown
        if time.monotonic() - start > 0.3 and not h.writes:
            h.view[SID]["state"] = "UNKNOWN"
            h.writes.append(Write(time.monotonic(), SID, "probe", {"unknown": True}))

    host.on_snapshot = late_probe
    f = _converge(host, tmp_path)
    assert not f.ok, f
    assert "into the" in f.symptom and "write by probe" in f.symptom, f.symptom
    assert f.facts["hold_diverged"]


def test_converged_only_after_holding_through_the_window(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(chk, "shim_status", lambda *a, **k: "RUNNING")
    host = Host({SID: _view("RUNNING")})
    t0 = time.monotonic()
    f = _converge(host, tmp_path)
    window, explicit = chk.hold_window(host.timing)
    assert f.ok, f
    assert time.monotonic() - t0 >= window
    assert not explicit and host.ticks == 0


def test_hold_window_runs_deadgc_by_hand_when_the_periodic_pass_is_off() -> None:
    t = Timing().scaled(0.05)
    window, explicit = chk.hold_window(t)
    assert not explicit and window == pytest.approx(t.deadgc_tick + t.reconcile_query + 0.3)
    off = Timing(deadgc_tick=3600.0).scaled(1.0)
    window, explicit = chk.hold_window(off)
    assert explicit and window < 60


def test_line_held_needs_a_write_of_the_line_after_the_fault() -> None:
    facts = {"writes": [{"t": 1.0, "origin": "event"}, {"t": 5.0, "origin": "deadgc"}]}
    facts["origins"] = ["deadgc", "event"]
    assert chk.line_held(facts, line="x", origins={"event"}).ok
    assert not chk.line_held(facts, line="x", origins={"event"}, after=2.0).ok
    assert not chk.line_held(facts, line="x", origins={"rpc_reconcile"}).ok


# -- switches -------------------------------------------------------------------------------
def test_the_pre404_alias_expands_to_its_four_defence_lines() -> None:
    assert bugs.validate({bugs.PAUSE_RESUME_PRE404}) == bugs.GROUPS[bugs.PAUSE_RESUME_PRE404]
    assert len(bugs.GROUPS[bugs.PAUSE_RESUME_PRE404]) == 4


def test_every_switch_is_checked_in_the_module_it_names() -> None:
    root = Path(bugs.__file__).parent
    consts = {v: k for k, v in vars(bugs).items() if isinstance(v, str) and v in bugs.SWITCHES}
    for name, switch in bugs.SWITCHES.items():
        modules = [m.split(" ")[0].rstrip(",") for m in switch.module.split(", ")]
        users = [
            p.name
            for p in root.glob("*.py")
            if p.name != "bugs.py" and f"bugs.{consts[name]})" in p.read_text()
        ]
        assert users, f"{name} is checked nowhere"
        assert set(users) <= set(modules), f"{name} checked in {users}, declared {modules}"
