"""ReconcilerHost's read accessors (pid, incarnation) and start_resume.

The reconciler runs on the host's loop against a stand-in runtime (no containerd): what is
tested is the host's bookkeeping, not the RPCs. The stand-in's pids change per creation so a
test can tell a re-created sandbox's record from the first one's.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.reconciler.sandbox.errors import SandboxError
from harness.reconciler.sandbox.host import ReconcilerHost
from harness.reconciler.sandbox.reconciler import SandboxReconciler


class StandInRuntime:
    """Just what create/resume/the exit watcher call; Wait blocks until cancelled."""

    def __init__(self) -> None:
        self.inflight = 0
        self.last_call_end = 0.0
        self._pids = itertools.count(1000)
        self.resumed: list[str] = []

    async def create(self, sid: str, runtime: str, annotations: dict[str, str]) -> int:
        return next(self._pids)

    def shim_address(self, sid: str) -> str:
        return f"unix:///stand-in/{sid}"

    async def wait(self, sid: str) -> int:
        await asyncio.Event().wait()
        return 0

    async def resume(self, sid: str, timeout: float | None) -> None:
        self.resumed.append(sid)

    async def delete_container(self, sid: str) -> None:
        return None


@pytest.fixture
def host(tmp_path: Path) -> Iterator[ReconcilerHost]:
    h = ReconcilerHost(
        target="unused",
        namespace="unit",
        state_dir=tmp_path,
        store_path=tmp_path / "store.db",
        runtime_name="stand-in",
    )
    h._thread.start()
    h.runtime = StandInRuntime()  # type: ignore[attr-defined]
    _boot(h)
    yield h
    h.close()


def _boot(h: ReconcilerHost) -> None:
    """A reconciler on the host's loop, as ``_boot`` makes one, minus containerd (and
    minus its loops: only the records are reloaded, as ``start`` does)."""

    async def make() -> SandboxReconciler:
        rec = SandboxReconciler(
            h.runtime,  # type: ignore[attr-defined]
            h.store_path,
            runtime_name="stand-in",
            generation=h.generation,
            incarnations=h._incarnations,
        )
        rec.sandboxes = rec.store.load_all()
        return rec

    h.rec = h.call(make())


def test_unknown_sandbox_has_no_pid_nor_incarnation(host: ReconcilerHost) -> None:
    assert host.pid("nope") is None
    assert host.incarnation("nope") is None


def test_pid_and_incarnation_after_create(host: ReconcilerHost) -> None:
    host.create("sb")
    assert host.pid("sb") == 1000
    assert host.incarnation("sb") == 1


def test_recreated_sandbox_is_a_new_incarnation_with_its_own_pid(
    host: ReconcilerHost,
) -> None:
    host.create("sb")
    host.call(_mark_exited(host, "sb"))
    assert host.remove_sandbox("sb") is None
    assert host.pid("sb") is None  # removed: no record
    assert host.incarnation("sb") == 1  # the count stays
    host.create("sb")
    assert host.incarnation("sb") == 2
    assert host.pid("sb") == 1001


def test_incarnation_outlives_a_reconciler_generation(host: ReconcilerHost) -> None:
    host.create("sb")
    host.call(host.r.crash())
    host.generation += 1
    _boot(host)
    assert host.incarnation("sb") == 1
    assert host.pid("sb") == 1000  # the record reloaded from the store keeps its pid


def test_start_resume_returns_a_future_of_the_outcome(host: ReconcilerHost) -> None:
    fut = host.start_resume("missing", timeout=1)
    err = fut.result(10)
    assert isinstance(err, SandboxError)
    host.create("sb")
    host.call(_mark_paused(host, "sb"))
    assert host.start_resume("sb", timeout=1).result(10) is None
    assert host.runtime.resumed == ["sb"]  # type: ignore[attr-defined]


async def _mark_exited(host: ReconcilerHost, sid: str) -> None:
    sb = host.r.sandboxes[sid]
    host.r.write(sb, "exit", finished_at=1)


async def _mark_paused(host: ReconcilerHost, sid: str) -> None:
    sb = host.r.sandboxes[sid]
    host.r.write(sb, "rpc_success", paused_at=1)
