"""The claims world's vocabulary: JSON round trip through the world-neutral schedule
parser, table rows, one clear error per malformed step, the intake failpoint term."""

from __future__ import annotations

import json

import pytest

from harness.errors import ReconvergeError
from harness.explore import schedule as S
from harness.explore.claims import steps as C

EVERY_STEP = (
    C.CreateClaim("c0"),
    C.DeleteClaim("s0[1]"),
    C.ScaleSet("s0", 2),
    C.Migrate("c0", "c1"),
    C.Migrate("s0[0]", "idle"),
    C.DeletePod("c0"),
    C.RecreatePod("pod-3"),
    C.PodPhase("c1", "Succeeded"),
    C.Toxic("reset_peer", "watch"),
    C.Toxic("latency", "api", 300),
    C.Toxic("silent", "watch"),
    C.Toxic("down", "watch"),
    C.Intake("pods", "reorder", 2),
    C.ApiserverRestart(),
    C.Compact(),
    C.OperatorRestart(),
    C.Heal(),
)


def test_every_op_is_in_the_vocabulary_once():
    assert {type(s) for s in EVERY_STEP} == set(C.STEPS.values())


def test_every_step_round_trips_through_json():
    sched = S.Schedule(EVERY_STEP, world="claims", bugs=("lost_keeps_podname",))
    again = S.Schedule.loads(json.dumps(sched.to_json()))
    assert again == sched
    assert again.dumps() == sched.dumps()


def test_table_rows_read_like_a_timeline():
    table = S.Schedule(EVERY_STEP[:6], world="claims").table()
    assert "T4" in table and "migrate c0 to the pod of c1" in table
    assert "delete the pod of c0 (grace 0)" in table
    assert "scale claim set s0 to 2" in table
    assert (
        "toxic latency(300) on operator → API server (api)"
        in C.Toxic("latency", "api", 300).describe()
    )


def test_intake_term_is_logical_time():
    assert C.Intake("pods", "drop").term == "1*drop"
    assert C.Intake("cnclaims", "duplicate", 3).term == "1*off->1*off->1*duplicate(1)"
    assert C.Intake("pods", "reorder").point == "claims.watch.pods.intake"


def test_failpoints_and_effects_of_a_schedule():
    steps = (C.Intake("pods", "drop"), C.Toxic("down", "watch"), C.Compact(), C.Compact())
    assert C.failpoints_of(steps) == ["claims.watch.pods.intake"]
    assert C.effects_of(steps) == [C.COMPACTION, "toxic down on watch"]
    workload = (C.CreateClaim("c0"), C.DeletePod("c0"), C.Migrate("c0", "idle"))
    assert C.effects_of(workload) == ["migration", "pod deleted"]
    assert C.effects_of((C.CreateClaim("c0"),)) == [C.ROUTINE_READ_TIMEOUT]


@pytest.mark.parametrize(
    ("step", "says"),
    [
        ({"op": "create_claim", "claim": "s0[0]"}, "unknown claim"),
        ({"op": "delete_claim", "claim": "c9"}, "unknown claim"),
        ({"op": "migrate", "claim": "c0", "to": "nowhere"}, "unknown pod"),
        ({"op": "delete_pod", "pod": "pod-99"}, "unknown pod"),
        ({"op": "pod_phase", "pod": "c0", "phase": "Exploded"}, "unknown phase"),
        ({"op": "scale_set", "set": "s0", "replicas": 7}, "replicas must be"),
        ({"op": "scale_set", "set": "s9", "replicas": 1}, "unknown claim set"),
        ({"op": "toxic", "kind": "silent", "leg": "api"}, "may sit on watch"),
        ({"op": "toxic", "kind": "slow"}, "unknown toxic"),
        ({"op": "toxic", "kind": "latency", "leg": "api"}, "positive argument"),
        ({"op": "intake", "kind": "pods", "action": "eat"}, "unknown action"),
        ({"op": "intake", "kind": "nodes", "action": "drop"}, "unknown kind"),
        ({"op": "intake", "kind": "pods", "action": "drop", "nth": 0}, "nth must be"),
        ({"op": "create", "sandbox": "sb0"}, "unknown op"),
        ({"op": "heal", "sandbox": "sb0"}, "has no field sandbox"),
    ],
)
def test_a_malformed_step_is_one_clear_error(step, says):
    with pytest.raises(ReconvergeError, match=says):
        S.Schedule.from_json({"world": "claims", "steps": [step]}, source="f.json")


def test_a_saved_claims_file_loads_with_its_original():
    sched = S.Schedule((C.CreateClaim("c0"), C.DeletePod("c0")), world="claims")
    saved = S.Saved(sched, "DIVERGED", "x", {"check": "c"}, original=sched, original_confirm="2/2")
    again = S.Saved.from_json(json.loads(json.dumps(saved.to_json())), source="f.json")
    assert again.schedule == sched and again.original == sched
