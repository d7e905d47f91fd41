"""An outcome learnt from an RPC orders later pause events (F10), on a stand-in runtime.

``events._stale`` drops a pause event older than the last change the reconciler knows of;
F10 was a ``/tasks/paused`` delayed past the Resume reply that followed it, applied
because only event-applied changes were known. ``note_change`` records RPC-learnt ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.reconciler.sandbox import bugs, events
from harness.reconciler.sandbox.reconciler import SandboxReconciler
from harness.reconciler.sandbox.record import PAUSED, RUNNING, ContainerStatus, Sandbox


class NoRuntime:
    inflight = 0


def _rec(tmp_path: Path, *switches: str) -> SandboxReconciler:
    rec = SandboxReconciler(
        NoRuntime(),  # type: ignore[arg-type]
        tmp_path / "store.db",
        runtime_name="stand-in",
        bugs=switches,
    )
    rec.sandboxes["sb"] = Sandbox("sb", [ContainerStatus("sb", created_at=1, started_at=2)])
    return rec


@pytest.mark.parametrize(
    ("stamp", "switches", "state"),
    [
        (50, (), RUNNING),  # older than the Resume sent at 100: dropped
        (150, (), PAUSED),  # a pause after it: applied
        (50, (bugs.APPLIES_STALE_PAUSE_EVENT,), PAUSED),  # the pre-fix applies it anyway
    ],
)
def test_a_paused_event_older_than_a_resume_reply_is_dropped(
    tmp_path: Path, stamp: int, switches: tuple[str, ...], state: str
) -> None:
    rec = _rec(tmp_path, *switches)
    rec.note_change("sb", 100)  # the Resume that succeeded was sent at 100
    asyncio.run(events._pause_event(rec, "sb", paused=True, at_ns=stamp))
    assert rec.sandboxes["sb"].state() == state
