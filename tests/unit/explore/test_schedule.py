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
    S.PauseAsync("sb0"),
    S.ResumeAsync("sb0", 0.4),
    S.KillTask("sb0"),
    S.Stop("sb0"),
    S.Delete("sb0"),
    S.Restart(),
    S.ContainerdRestart(),
    S.ContainerdRestart(kill=True),
    S.LateExit("sb0"),
    S.ShimFault("sb0", "Delete", "between", "delay", "300", nth=2),
    S.ShimFault("sb0", "publish", "tasks.paused", "hold", "tasks.resumed"),
    S.Toxic("latency", arg=300),
    S.Toxic("timeout", leg="shim-containerd"),
    S.Toxic("reset_peer", leg="containerd-shim"),
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
        ({"op": "toxic", "kind": "latency", "leg": "moon-shim"}, "unknown leg 'moon-shim'"),
        ({"op": "containerd_restart", "kill": True, "sandbox": "sb0"}, "has no field sandbox"),
        ({"op": "late_exit", "sandbox": "sb7"}, "unknown sandbox 'sb7'"),
        (
            {
                "op": "shim_fault",
                "sandbox": "sb0",
                "method": "Pause",
                "phase": "after",
                "action": "hold",
                "arg": "tasks.exit",
            },
            "hold is for shim.publish.<topic> points",
        ),
        (
            {
                "op": "shim_fault",
                "sandbox": "sb0",
                "method": "publish",
                "phase": "tasks.exit",
                "action": "hold",
                "arg": "tasks.moon",
            },
            "takes the releasing topic",
        ),
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
    assert log.draws[0][1] == "swarm" and log.draws[1][:2] == (1, "length")
    n, swarm = log.draws[1][2], log.draws[0][2]
    if log.draws[2][1:] == ("armed_first", True):  # the swarm armed, then created
        prefix = sched.steps[: len(swarm) + 1]
        assert all(isinstance(s, S.ShimFault) and s.nth == 1 for s in prefix[:-1])
        assert isinstance(prefix[-1], S.Create)
        assert len(sched) == max(n, len(prefix) + 1)
    else:
        assert len(sched) == n
    # a swarm of at most SWARM_MAX fault-menu entries per schedule
    kinds = {
        (s.method, s.phase, s.action, s.arg) for s in sched.steps if isinstance(s, S.ShimFault)
    }
    assert len(kinds) <= strategy.SWARM_MAX
    # a late exit only once its id was created twice (it names an earlier incarnation)
    for i, step in enumerate(sched.steps):
        if isinstance(step, S.LateExit):
            before = sched.steps[:i]
            assert sum(isinstance(s, S.Create) and s.sandbox == step.sandbox for s in before) >= 2


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


def test_new_vocabulary_describes_and_declares_its_effects():
    steps = (
        S.PauseAsync("sb0", 0.4),
        S.ContainerdRestart(kill=True),
        S.ContainerdRestart(),
        S.LateExit("sb0"),
        S.Toxic("timeout", leg="shim-containerd"),
        S.ShimFault("sb0", "publish", "tasks.exit", "hold", "tasks.delete"),
    )
    sched = S.Schedule(steps)
    rows = sched.table().splitlines()[2:]
    assert "begin pause sb0 (caller deadline 0.4s), not waiting" in rows[0]
    assert rows[1].endswith("containerd kill -9 + restart")
    assert rows[2].endswith("containerd SIGTERM + restart")
    assert "late /tasks/exit of the previous incarnation of sb0" in rows[3]
    assert rows[4].endswith("toxic timeout on shim → containerd")
    assert rows[5].endswith("fault shim.publish.tasks.exit=1*hold(tasks.delete) on sb0")
    assert sched.effects() == [
        S.CONTAINERD_EFFECTS[True],  # sorted: "containerd kill -9" < "containerd restart…"
        S.CONTAINERD_EFFECTS[False],
        S.LATE_EXIT_EFFECT,
        "toxic timeout on shim-containerd",
    ]
    assert sched.faults() == ["shim.publish.tasks.exit"]
    assert S.PauseAsync("sb0").target == "sb0" and S.ContainerdRestart().target == ""


def test_every_toxic_leg_and_new_op_is_drawn():
    """The strategy reaches every leg of the toxic menu and every new op (weights > 0)."""
    legs = {leg for _k, _a, leg in strategy.TOXIC_MENU}
    assert legs == set(S.LEGS)
    model = strategy._Model(exists={"sb0": True}, paused={"sb0": False}, created={"sb0": 2})
    running = strategy._ops(model, "sb0", toxics=True)
    model.paused["sb0"] = True
    paused = strategy._ops(model, "sb0", toxics=True)
    for op in ("pause_async", "containerd_restart", "late_exit", "toxic"):
        assert op in running, op
    assert "resume_async" in paused
    # the state invites its op: a running sandbox is mostly paused, a paused one resumed
    assert running.count("pause") > running.count("resume")
    assert paused.count("resume") > paused.count("pause")
    assert "late_exit" not in strategy._ops(
        strategy._Model(exists={"sb0": True}, created={"sb0": 1}), "sb0", toxics=False
    )


def test_a_lost_reply_pairs_with_its_lost_event():
    """The swarm's partners: a reply fault after the call and the drop of its event, both ways;
    entries that lose no outcome have none (the pair that hides a missing status query)."""
    menu = strategy.FAULT_MENU
    names = {f.name: i for i, f in enumerate(menu)}

    def mates(name: str) -> set[str]:
        return {menu[j].name for j in strategy.partners(menu, names[name])}

    assert mates("Pause.after=drop") == {"publish.tasks.paused=drop"}
    assert mates("Resume.after=delay(1200)") == {"publish.tasks.resumed=drop"}
    assert mates("publish.tasks.paused=drop") == {"Pause.after=drop", "Pause.after=delay(1200)"}
    assert mates("Shutdown.before=error(please retry)") == set()
    assert mates("publish.tasks.paused=hold(tasks.resumed)") == set()


def test_armed_first_arms_every_swarm_entry_then_creates_and_meets_it():
    """The prefix arms each entry for its first call, creates, and the op drawn next is
    mostly the call the fault breaks (a pause after a Pause fault)."""
    model = strategy._Model()
    entries = [f for f in strategy.FAULT_MENU if f.name in ("Pause.after=drop",)]
    steps = strategy._armed_first(model, "sb0", entries)
    assert [s.op for s in steps] == ["shim_fault", "create"]
    assert steps[0].nth == 1 and model.exists["sb0"] and model.just == "Pause"
    ops = strategy._ops(model, "sb0", toxics=True)
    assert ops.count("pause") + ops.count("pause_async") > len(ops) / 2
