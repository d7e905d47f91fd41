"""Event ordering by envelope timestamp (events._stale, F5): an older event than the last
change applied is ignored, unless the pre-fix switch applies events in arrival order. A
change learnt from an RPC counts too (``note_change``, F10: a ``/tasks/paused`` delayed
past the Resume reply that followed it was applied)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.reconciler.sandbox import bugs, events
from harness.reconciler.sandbox.events import PAUSED, RESUMED, _stale
from harness.reconciler.sandbox.reconciler import SandboxReconciler
from harness.reconciler.sandbox.record import PAUSED as PAUSED_STATE
from harness.reconciler.sandbox.record import RUNNING, ContainerStatus, Sandbox


@dataclass
class _Rec:
    """The two members of the reconciler _stale reads (a unit test of one module)."""

    bugs: frozenset[str] = frozenset()
    last_change_ns: dict[str, int] = field(default_factory=dict)

    def bug(self, name: str) -> bool:
        return name in self.bugs


def test_older_event_after_newer_one_is_stale():
    rec = _Rec()
    assert not _stale(rec, "sb0", 200, RESUMED)  # type: ignore[arg-type]
    assert _stale(rec, "sb0", 100, PAUSED)  # type: ignore[arg-type]
    assert rec.last_change_ns["sb0"] == 200


def test_newer_and_unstamped_events_apply():
    rec = _Rec()
    assert not _stale(rec, "sb0", 100, PAUSED)  # type: ignore[arg-type]
    assert not _stale(rec, "sb0", 200, RESUMED)  # type: ignore[arg-type]
    assert not _stale(rec, "sb0", 0, PAUSED)  # type: ignore[arg-type]
    assert not _stale(rec, "sb1", 50, PAUSED)  # type: ignore[arg-type]  # per sandbox
    assert rec.last_change_ns == {"sb0": 200, "sb1": 50}


def test_pre_fix_switch_applies_in_arrival_order():
    rec = _Rec(bugs=frozenset({bugs.APPLIES_STALE_PAUSE_EVENT}))
    assert not _stale(rec, "sb0", 200, RESUMED)  # type: ignore[arg-type]
    assert not _stale(rec, "sb0", 100, PAUSED)  # type: ignore[arg-type]


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
        (150, (), PAUSED_STATE),  # a pause after it: applied
        (50, (bugs.APPLIES_STALE_PAUSE_EVENT,), PAUSED_STATE),  # the pre-fix applies it anyway
    ],
)
def test_a_paused_event_older_than_a_resume_reply_is_dropped(
    tmp_path: Path, stamp: int, switches: tuple[str, ...], state: str
) -> None:
    rec = _rec(tmp_path, *switches)
    rec.note_change("sb", 100)  # the Resume that succeeded was sent at 100
    asyncio.run(events._pause_event(rec, "sb", paused=True, at_ns=stamp))
    assert rec.sandboxes["sb"].state() == state
