"""State derivation (§1.3) and what survives a restart (§1.2)."""

from __future__ import annotations

import pytest

from harness.errors import ReconvergeError
from harness.reconciler.sandbox import bugs
from harness.reconciler.sandbox.record import (
    CREATED,
    EXITED,
    PAUSED,
    PAUSING,
    RUNNING,
    UNKNOWN,
    ContainerStatus,
    Sandbox,
)
from harness.reconciler.sandbox.store import SandboxStore, StoreClosed
from harness.reconciler.sandbox.timing import RPC_FLOOR_S, Timing


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, UNKNOWN),
        ({"created_at": 1}, CREATED),
        ({"created_at": 1, "started_at": 2}, RUNNING),
        ({"started_at": 2, "paused_at": 3}, PAUSED),
        ({"started_at": 2, "paused_at": 3, "pausing_at": 4}, PAUSING),  # PAUSING masks PAUSED
        ({"started_at": 2, "pausing_at": 4, "finished_at": 5}, EXITED),
        ({"started_at": 2, "finished_at": 5, "unknown": True}, UNKNOWN),
    ],
)
def test_state_priority(fields, state):
    assert ContainerStatus("c", **fields).state() == state


def test_restart_keeps_pausing_at_but_loses_unknown(tmp_path):
    sb = Sandbox("s", [ContainerStatus("s", started_at=1, pausing_at=2, unknown=True)])
    sb.rolling_back = True
    store = SandboxStore(tmp_path / "db.sqlite")
    store.save(sb)
    store.close()
    again = SandboxStore(tmp_path / "db.sqlite").load_all()["s"]
    assert again.first.pausing_at == 2 and again.state() == PAUSING
    assert not again.first.unknown and not again.rolling_back


def test_closed_store_refuses_writes(tmp_path):
    store = SandboxStore(tmp_path / "db.sqlite")
    store.close()
    with pytest.raises(StoreClosed):
        store.save(Sandbox("s", [ContainerStatus("s")]))


def test_scaled_timing_keeps_ratios_and_floors_rpc_deadlines():
    t = Timing().scaled(0.05)
    assert t.pausing_stuck_threshold == pytest.approx(2 * t.pause_rpc)
    assert t.reconcile_query == RPC_FLOOR_S < t.pause_rpc
    assert t.quiescence_horizon == pytest.approx(3.0 + 0.5 + 0.5)
    with pytest.raises(ValueError):
        Timing().scaled(0)


def test_unknown_switch_is_one_clear_error():
    with pytest.raises(ReconvergeError, match="unknown sandbox bug switch nope; known: "):
        bugs.validate({"nope"})
    assert bugs.validate({bugs.DUAL_EXIT_HANDLERS}) == {bugs.DUAL_EXIT_HANDLERS}


def test_every_switch_cites_its_seed():
    for s in bugs.SWITCHES.values():
        assert s.seed.startswith("seed ") and s.symptom
