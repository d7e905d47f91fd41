"""Lanes, spans, fault intervals and the first violation, on small hand-made journals."""

from __future__ import annotations

from typing import Any

import pytest

from harness.journal.record import Record
from harness.report import lanes


def rec(t: float, proc: str, component: str, event: str, pid: int = 1, **fields: Any) -> Record:
    return Record(100.0 + t, 1_700_000_000.0 + t, pid, proc, component, event, fields)


def test_lane_of_each_actor() -> None:
    assert lanes.lane_of(rec(0, "shim:sb", "shim", "request")) == "shim:sb"
    assert lanes.lane_of(rec(0, "shim:sb", "failpoint", "trigger")) == "shim:sb"
    assert lanes.lane_of(rec(0, "pytest-main", "reconciler", "write")) == "reconciler"
    assert lanes.lane_of(rec(0, "pytest-main", "reconciler", "event_in")) == "containerd events"
    assert lanes.lane_of(rec(0, "pytest-main", "client", "task.delete")) == "containerd API"
    assert lanes.lane_of(rec(0, "pytest-main", "claims.watch", "added")) == "API-server watch"
    assert lanes.lane_of(rec(0, "pytest-main", "kubelet", "sync")) == "kubelet"
    assert lanes.lane_of(rec(0, "pytest-main", "echo", "fault")) == "echo"


def test_shim_calls_pair_by_stream_and_an_unanswered_one_runs_to_the_end() -> None:
    pic = lanes.build(
        [
            rec(0.0, "shim:a", "shim", "request", pid=7, method="Delete", stream_id=3),
            rec(0.1, "shim:a", "shim", "request", pid=7, method="State", stream_id=5),
            rec(0.2, "shim:a", "shim", "reply", pid=7, method="State", stream_id=5, outcome="ok"),
            rec(0.3, "shim:a", "shim", "request", pid=7, method="Shutdown", stream_id=9),
            rec(0.4, "shim:a", "shim", "reply", pid=7, method="Delete", stream_id=3, outcome="ok"),
            rec(1.0, "pytest-main", "check", "quiet"),
        ]
    )
    spans = {i.label: i for i in pic.lane_items("shim:a")}
    assert spans["Delete"].start == pytest.approx(0.0)
    assert spans["Delete"].end == pytest.approx(0.4)
    assert spans["Delete"].index == 1  # links to the request's row
    assert spans["State"].end == pytest.approx(0.2)
    assert not spans["State"].error
    hung = spans["Shutdown (no reply)"]
    assert hung.end == pytest.approx(pic.duration) and hung.error


def test_client_call_is_a_span_ending_at_its_record() -> None:
    pic = lanes.build(
        [
            rec(0.0, "pytest-main", "run", "started"),
            rec(0.5, "pytest-main", "client", "task.delete", outcome="NOT_FOUND", ms=200.0),
        ]
    )
    (item,) = pic.lane_items("containerd API")
    assert item.start == pytest.approx(0.3) and item.end == pytest.approx(0.5)
    assert item.error


def test_toxic_interval_from_added_to_removed_and_proxy_deleted_closes_the_rest() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "toxiproxy", "toxic_added", proxy="x", toxic="latency", stream="down"),
            rec(0.2, "p", "toxiproxy", "toxic_added", proxy="x", toxic="timeout", stream="up"),
            rec(0.5, "p", "toxiproxy", "toxic_removed", proxy="x", toxic="latency_down"),
            rec(0.9, "p", "toxiproxy", "proxy_deleted", proxy="x"),
            rec(1.0, "p", "check", "done"),
        ]
    )
    got = {(f.label.split()[1], round(f.start, 3), round(f.end or -1, 3)) for f in pic.faults}
    assert got == {("latency", 0.0, 0.5), ("timeout", 0.2, 0.9)}
    assert not any(f.open_ended for f in pic.faults)


def test_a_toxic_never_removed_is_open_to_the_end() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "toxiproxy", "toxic_added", proxy="x", toxic="reset_peer"),
            rec(2.0, "p", "check", "done"),
        ]
    )
    (fault,) = pic.faults
    assert fault.open_ended and fault.end == pytest.approx(2.0)


def test_failpoint_trigger_is_an_instant_and_a_held_call_an_interval() -> None:
    POINT = "shim.Pause.after"
    pic = lanes.build(
        [
            rec(0.0, "shim:a", "shim", "request", pid=7, method="Pause", stream_id=1),
            rec(
                0.0, "shim:a", "failpoint", "trigger", pid=7, name=POINT, action="delay", arg="300"
            ),
            rec(0.0, "shim:a", "shim", "fault", pid=7, point=POINT, action="delay", stream_id=1),
            rec(0.3, "shim:a", "shim", "reply", pid=7, method="Pause", stream_id=1, outcome="ok"),
            rec(0.4, "p", "failpoint", "trigger", name="x", action="off"),
        ]
    )
    instants = [f for f in pic.faults if f.end is None]
    held = [f for f in pic.faults if f.end is not None]
    assert [f.label for f in instants] == ["shim.Pause.after: delay(300)"]
    assert instants[0].lane == "shim:a"
    assert len(held) == 1 and held[0].end == pytest.approx(0.3)  # an "off" is not a fault


def test_restart_interval() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "containerd", "restarting", kill=True),
            rec(0.7, "p", "containerd", "ready"),
            rec(0.8, "p", "etcd", "ready"),
        ]
    )
    (fault,) = pic.faults
    assert (fault.start, fault.end) == (pytest.approx(0.0), pytest.approx(0.7))


def test_first_violation_is_the_first_failing_check_not_the_verdict() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "check", "queue", ok=True, symptom="nothing queued"),
            rec(0.1, "p", "check", "leak", ok=False, observed=True, symptom="leaked shim"),
            rec(0.2, "p", "leaks", "leak", kind="shim-process", id="sb"),
            rec(0.3, "p", "verdict", "DIVERGED", symptom="leak"),
        ]
    )
    v = pic.violation
    assert v is not None and v.index == 2 and v.text == "leak: leaked shim"
    assert v.lane == "checks"


def test_unobservable_check_is_not_a_violation_but_a_bad_verdict_is() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "check", "leak", ok=False, observed=False, symptom="containerd down"),
            rec(0.3, "p", "verdict", "INCONCLUSIVE", symptom="truth unobservable"),
        ]
    )
    assert pic.violation is not None and pic.violation.index == 2


def test_quiet_run_has_no_violation_and_lanes_follow_the_preferred_order() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "echo", "listening"),
            rec(0.1, "p", "verdict", "PASSED"),
            rec(0.2, "shim:b", "shim", "serving"),
            rec(0.3, "p", "reconciler", "write"),
            rec(0.4, "shim:a", "shim", "serving"),
        ]
    )
    assert pic.violation is None
    assert pic.lanes == ["reconciler", "shim:b", "shim:a", "checks", "echo"]


def test_empty_journal() -> None:
    pic = lanes.build([])
    assert pic.lanes == [] and pic.items == [] and pic.violation is None


def test_a_check_record_carrying_several_findings_can_be_the_violation() -> None:
    pic = lanes.build(
        [
            rec(0.0, "p", "check", "observed", findings=[{"check": "a", "ok": True}]),
            rec(0.1, "p", "check", "observed", findings=[
                {"check": "b", "ok": False, "observed": False, "symptom": "blind"},
                {"check": "claim-c rebound", "ok": False, "observed": True, "symptom": "pod-p"},
            ]),
            rec(0.2, "p", "verdict", "CAUGHT"),
        ]
    )  # fmt: skip
    assert pic.violation is not None and pic.violation.index == 2
    assert pic.violation.text == "claim-c rebound: pod-p"
