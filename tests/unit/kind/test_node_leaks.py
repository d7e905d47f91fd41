"""The node leak checker's judging, on synthetic probe output (no node): each leak kind,
attribution from CRI labels learnt on an earlier look, filters, and a node that cannot be
read never reading as clean or leaked."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from harness.checks.node_leaks import NodeLeakChecker, pod_ref

SB, CT = "sb" * 32, "ct" * 32
POD = {"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "p"}


def _probe(**over: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "mono": 1.0,
        "daemons": [],
        "registry": [],
        "tasks": {},
        "containers": {},
        "orphans": [],
        "errors": {},
    }
    return view | over


class FakeNode:
    """Answers each ``exec`` with the next canned probe output (or a failure)."""

    nodes = ["n1"]

    def __init__(self, *answers: dict[str, Any] | str) -> None:
        self.answers = list(answers)

    def exec(self, node: str, *argv: str, **_: Any) -> subprocess.CompletedProcess[bytes]:
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, str):
            return subprocess.CompletedProcess(argv, 1, b"", a.encode())
        return subprocess.CompletedProcess(argv, 0, json.dumps(a).encode(), b"")


def _daemon(cid: str, pid: int, **over: Any) -> dict[str, Any]:
    d = {"pid": pid, "id": cid, "namespace": "k8s.io", "registered": True, "socket": "/s"}
    return d | {"answers": True, "status": "NO_TASK", "error": ""} | over


def test_pod_ref_from_cri_labels() -> None:
    ref = pod_ref({**POD, "io.cri-containerd.kind": "sandbox", "io.kubernetes.pod.uid": "u"}, SB)
    assert ref is not None and (ref.key, ref.role, ref.sandbox_id, ref.uid) == (
        "ns/p",
        "sandbox",
        SB,
        "u",
    )
    ann = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": SB,
        "io.kubernetes.cri.sandbox-name": "p",
        "io.kubernetes.cri.sandbox-namespace": "ns",
    }
    ref = pod_ref(ann, CT)
    assert ref is not None and (ref.key, ref.role, ref.sandbox_id) == ("ns/p", "container", SB)
    assert pod_ref({"io.kubernetes.pod.name": "p"}, "x") is None


def test_leaked_shims_attributed_from_an_earlier_look() -> None:
    running = _probe(
        daemons=[_daemon(SB, 10, status="RUNNING"), _daemon(CT, 11, status="RUNNING")],
        tasks={SB: {"pid": 12, "status": "RUNNING"}, CT: {"pid": 13, "status": "RUNNING"}},
        containers={
            SB: {
                "runtime": "io.containerd.stub.v2",
                "pod": {**POD, "io.cri-containerd.kind": "sandbox"},
            },
            CT: {
                "runtime": "io.containerd.stub.v2",
                "pod": {**POD, "io.cri-containerd.kind": "container"},
            },
        },
    )
    leaked = _probe(daemons=[_daemon(SB, 10), _daemon(CT, 11)])  # no tasks, no containers
    checker = NodeLeakChecker(FakeNode(running, leaked))
    assert checker.find() == []
    found = checker.check(timeout=0.1, pods={"ns/p"})
    assert found.observed and not found.ok
    rows = {x["container_id"]: x for x in found.facts["leaks"]}
    assert rows[SB]["role"] == "sandbox" and rows[CT]["role"] == "container"
    for x in rows.values():
        assert x["kind"] == "shim-process" and x["pod"] == "ns/p"
        assert x["shim_alive"] and x["shim_answers"] and x["shim_status"] == "NO_TASK"
        assert x["containerd_task"] == "" and not x["shim_holds_task"]
    assert found.facts["pods"] == ["ns/p"]
    assert checker.check(timeout=0.1, pods={"ns/other"}).ok  # another pod's filter: clean


def test_other_kinds_and_filters() -> None:
    view = _probe(
        daemons=[_daemon("", 20, registered=False, socket="", answers=None, status="")],
        registry=[{"id": "gone", "pid": 99, "registry": "/run/reconverge-shim/x.json"}],
        orphans=[{"pid": 30, "namespace": "k8s.io", "id": "t", "shim_pid": 98}],
    )
    checker = NodeLeakChecker(FakeNode(view))
    kinds = sorted(x.kind for x in checker.find())
    assert kinds == ["registry-stale", "shim-unregistered", "task-orphan"]
    assert checker.find(k8s_namespace="ns") == []  # unattributable: dropped by a filter
    assert checker.find(ignore=checker.find()) == []  # a baseline hides what was there


def test_unreadable_node_or_containerd_is_unobservable() -> None:
    assert not NodeLeakChecker(FakeNode("Error: No such container")).check(timeout=0.1).observed
    blind = NodeLeakChecker(FakeNode(_probe(errors={"tasks": "ctr: connection refused"})))
    f = blind.check(timeout=0.1)
    assert not f.observed and "containerd" in f.symptom
    hung = _probe(daemons=[_daemon(SB, 10, answers=None, error="no answer within 1s")])
    assert not NodeLeakChecker(FakeNode(hung)).check(timeout=0.1).observed


def test_a_leak_needs_the_last_look() -> None:
    """Seen once, then gone (a slow exit): clean. Seen, then unreadable: unobservable."""
    leaked = _probe(daemons=[_daemon(CT, 11)])
    assert NodeLeakChecker(FakeNode(leaked, _probe())).check(timeout=2).ok
    f = NodeLeakChecker(FakeNode(leaked, "exec failed")).check(timeout=0.5)
    assert not f.observed
