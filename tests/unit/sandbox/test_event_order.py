"""Event ordering by envelope timestamp (events._stale, F5): an older event than the last
change applied is ignored, unless the pre-fix switch applies events in arrival order."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.reconciler.sandbox import bugs
from harness.reconciler.sandbox.events import PAUSED, RESUMED, _stale


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
