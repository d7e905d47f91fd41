"""Schedules as data: JSON round trip, the failpoint term of a logical-time fault, the
table, and one clear error per malformed step."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ReconvergeError
from harness.explore import schedule as S
from harness.explore.draws import DrawLog
from harness.explore.sandbox import strategy

EVERY_STEP = (
    S.Create("sb0"),
    S.Pause("sb0", 0.4),
    S.Resume("sb1"),
    S.KillTask("sb0"),
    S.Stop("sb0"),
    S.Delete("sb0"),
    S.Restart(),
    S.ShimFault("sb0", "Delete", "between", "delay", "300", nth=2),
    S.Toxic("latency", arg=300),
    S.Heal(),
)


def test_every_op_round_trips_through_json():
    sched = S.Schedule(EVERY_STEP, bugs=("runtime.delete_not_retriable",))
    again = S.Schedule.loads(json.dumps(sched.to_json()))
    assert again == sched
    assert again.dumps() == sched.dumps()
    assert {s.op for s in EVERY_STEP} == set(S.STEPS)


def test_nth_is_logical_time_in_the_failpoint_term():
    first = S.ShimFault("sb0", "Shutdown", "before", "error", "please retry")
    second = S.ShimFault("sb0", "Delete", "between", "delay", "300", nth=2)
    assert first.term == "1*error(please retry)"
    assert second.term == "1*off->1*delay(300)"
    assert second.point == "shim.Delete.between"
    assert second.annotation == ("Delete_between", "1*off->1*delay(300)")
    assert S.ShimFault("sb0", "Pause", "after", "drop").term == "1*drop"


def test_table_numbers_steps_like_a_timeline():
    text = S.Schedule(EVERY_STEP[:3]).table(title="t")
    lines = text.splitlines()
    assert lines[0] == "t"
    assert lines[1].startswith("T ") and "detail" in lines[1]
    assert lines[3].startswith("T1  create") and lines[3].endswith("create sb0")
    assert "caller deadline 0.4s" in lines[4]
    assert S.table([]) == "(empty schedule)"


@pytest.mark.parametrize(
    "step, words",
    [
        ({"op": "jump", "sandbox": "sb0"}, "unknown op 'jump'"),
        ({"op": "create", "sandbox": "sb9"}, "unknown sandbox 'sb9'"),
        ({"op": "create", "sandbox": "sb0", "color": 1}, "create has no field color"),
        ({"op": "pause"}, "pause:"),
        (
            {
                "op": "shim_fault",
                "sandbox": "sb0",
                "method": "Pause",
                "phase": "between",
                "action": "delay",
            },
            "no shim point shim.Pause.between",
        ),
        (
            {
                "op": "shim_fault",
                "sandbox": "sb0",
                "method": "Pause",
                "phase": "after",
                "action": "explode",
            },
            "unknown shim action 'explode'",
        ),
        ({"op": "toxic", "kind": "bandwidth"}, "unknown toxic 'bandwidth'"),
        ("create", "a step is an object"),
    ],
)
def test_malformed_steps_are_one_clear_error(step, words):
    with pytest.raises(ReconvergeError) as err:
        S.Schedule.from_json({"steps": [step]}, source="f.json")
    assert words in str(err.value) and "f.json step 1" in str(err.value)


def test_malformed_schedules_are_one_clear_error():
    for text, words in [
        ("[", "not JSON"),
        ("[]", "a schedule is a JSON object"),
        ('{"steps": 3}', "'steps' must be a list"),
        ('{"world": "moon", "steps": []}', "unknown world 'moon'"),
    ]:
        with pytest.raises(ReconvergeError, match=words):
            S.Schedule.loads(text)
    with pytest.raises(ReconvergeError, match="no 'expected' outcome"):
        S.Saved.from_json({"steps": []}, source="x")


def test_saved_keeps_expected_symptom_and_meta():
    saved = S.Saved(S.Schedule(EVERY_STEP[:2]), "DIVERGED", "leak", {"seed": 3})
    again = S.Saved.from_json(json.loads(json.dumps(saved.to_json())), source="x")
    assert again == saved


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_drawn_schedules_are_valid_and_round_trip(data):
    log = DrawLog()
    sched = data.draw(strategy.schedules(max_steps=6, sandboxes=2, log=log))
    assert 1 <= len(sched) <= 6
    assert S.Schedule.loads(sched.dumps()) == sched
    # every draw is journaled with its index, in order
    assert [d[0] for d in log.draws] == list(range(len(log.draws)))
    assert log.draws[0][1] == "swarm" and log.draws[1] == (1, "length", len(sched))
    # a swarm of at most two fault-menu entries per schedule
    kinds = {
        (s.method, s.phase, s.action, s.arg) for s in sched.steps if isinstance(s, S.ShimFault)
    }
    assert len(kinds) <= 2


def test_fault_menu_filter_and_its_error():
    assert all(f.method == "Shutdown" for f in strategy.menu(["Shutdown"]))
    assert strategy.menu([]) == strategy.FAULT_MENU
    with pytest.raises(ReconvergeError, match="matches no fault"):
        strategy.menu(["Frobnicate"])


def test_saved_keeps_the_original_schedule_and_its_confirmation():
    saved = S.Saved(
        S.Schedule(EVERY_STEP[:2], bugs=("runtime.delete_not_retriable",)),
        "DIVERGED",
        "leak",
        {"seed": 3, "confirm": "failed 2 of 2 run(s) (confirm: 2 of at most 3)"},
        original=S.Schedule(EVERY_STEP[:5], bugs=("runtime.delete_not_retriable",)),
        original_confirm="failed 3 of 3 run(s) (confirm: 2 of at most 3)",
    )
    data = json.loads(json.dumps(saved.to_json()))
    assert len(data["original"]["steps"]) == 5 and len(data["steps"]) == 2
    again = S.Saved.from_json(data, source="x")
    assert again == saved
    # a replay runs the shrunk schedule: the top-level steps are unchanged
    assert S.Schedule.from_json(data, source="x") == saved.schedule


def test_saved_without_original_loads_and_a_bad_original_is_one_clear_error():
    old = S.Saved(S.Schedule(EVERY_STEP[:2]), "DIVERGED", "leak", {"seed": 3}).to_json()
    assert "original" not in old
    assert S.Saved.from_json(old, source="x").original is None
    with pytest.raises(ReconvergeError, match="'original' must be an object"):
        S.Saved.from_json(old | {"original": [1]}, source="x")
    with pytest.raises(ReconvergeError, match="x original: 'steps' must be a list"):
        S.Saved.from_json(old | {"original": {}}, source="x")


def test_a_world_not_built_yet_is_one_clear_error(monkeypatch):
    from harness.explore import worlds

    monkeypatch.setitem(worlds.WORLDS, "moon", "harness.explore.moon.hooks")
    with pytest.raises(ReconvergeError, match="world 'moon' is not built yet"):
        S.Schedule.loads('{"world": "moon", "steps": [{"op": "heal"}]}')
