"""kind plumbing: a pod on RuntimeClass ``reconverge-stub`` runs through the real kubelet.

The path users deploy — kube-scheduler → kubelet → CRI → containerd 1.6.20 → our stub shim —
checked without ``kubectl exec`` (the stub serves no Exec): the pod's container status
names a containerd task, that task's pid is a real process in the node (``sleep``) whose
parent is the stub daemon registered for that container, and the pod's sandbox runs on its
own stub daemon. Deleting the pod must leave no shim, registry entry or task process in the
node (:mod:`harness.checks.node_leaks`). A plumbing case: no variants, verdict PASSED, with
the shims' own journal as the fired evidence (Create, Start, Delete, Shutdown replied ok for
this pod's containers).
"""

from __future__ import annotations

import pytest

from harness.kind.fixtures import KindVerdict, shim_replies, stub_pod, wait_running
from harness.providers.kube.api import PODS
from harness.verdict import Finding, Outcome
from harness.wait import wait_for

#: the first kind case of a session pays the cluster bring-up (minutes on a loaded box)
pytestmark = [pytest.mark.needs("kind"), pytest.mark.suite, pytest.mark.timeout(900)]

SUITE = "kind"
POD = "stub-smoke"
GONE_TIMEOUT = 60.0
LEAK_WINDOW = 10.0


def _container_id(pod: dict) -> str:
    statuses = pod["status"].get("containerStatuses") or []
    return statuses[0].get("containerID", "").removeprefix("containerd://") if statuses else ""


def test_stub_pod_runs_and_leaves_no_shim(kind_cluster, kind_truth, kind_namespace, verdict):
    v = KindVerdict(verdict, kind_cluster, label="")  # the suite is "kind" already
    ns, truth, checker = kind_namespace, kind_truth, kind_cluster.checker
    truth.create(PODS, ns, stub_pod(POD))
    pod = wait_running(truth, ns, POD)
    node = pod["spec"]["nodeName"]
    cid = _container_id(pod)
    view = checker.look(node)  # learns the pod's sandbox and container from CRI labels
    mine = checker.containers_of(ns, POD)
    sandbox = next((c for c, p in mine.items() if p.role == "sandbox"), "")
    task = view.tasks.get(cid) or {}
    daemon = view.daemon_of(cid) or {}
    sb_task, sb_daemon = view.tasks.get(sandbox) or {}, view.daemon_of(sandbox) or {}
    state = pod["status"]["containerStatuses"][0].get("state") or {}
    findings = [
        Finding(
            "container status",
            bool(cid) and task.get("status") == "RUNNING" and "running" in state,
            f"status containerID {cid[:12]} ({list(state)}) -> containerd task {task or 'none'}",
        ),
        Finding(
            "real pid",
            bool(task.get("pid")) and task.get("comm") == "sleep",
            f"task pid {task.get('pid')} in {node} is {task.get('comm') or 'no process'!r}",
        ),
        Finding(
            "child of the stub",
            bool(daemon) and task.get("ppid") == daemon.get("pid") and daemon.get("registered"),
            f"ppid {task.get('ppid')}; stub daemon for {cid[:12]}: pid {daemon.get('pid')}, "
            f"registered {daemon.get('registered')}",
        ),
        Finding(
            "sandbox on the stub",
            bool(sb_daemon) and sb_task.get("status") == "RUNNING",
            f"sandbox {sandbox[:12] or '?'}: daemon pid {sb_daemon.get('pid')}, task {sb_task}",
        ),
    ]
    truth.delete(PODS, ns, POD)
    wait_for(
        lambda: truth.get(PODS, ns, POD) is None,
        timeout=GONE_TIMEOUT,
        what=f"pod {POD} gone from the API",
        interval=0.2,
    )
    findings.append(checker.check(timeout=LEAK_WINDOW, pods={f"{ns}/{POD}"}))
    kind_cluster.sync_journal()
    calls = shim_replies(kind_cluster.run.dir, v.since, {cid, sandbox})
    fired = {m: calls.get(m, 0) for m in ("Create", "Start", "Delete", "Shutdown")}
    bad = [f for f in findings if not (f.ok and f.observed)]
    assert not bad, "\n".join(str(f) for f in findings)
    assert all(n >= 2 for n in fired.values()), f"the pod's two shims were not driven: {fired}"
    v.record(
        suite=SUITE,
        case="runtimeclass stub pod",
        variant="-",
        fault="pod on RuntimeClass reconverge-stub, then deleted",
        outcome=Outcome.PASSED,
        symptom=(
            f"task pid {task['pid']} (sleep) child of stub pid {daemon['pid']}; "
            f"sandbox on its own stub; nothing left after the delete"
        ),
        fired=fired,
        findings=[f.summary() for f in findings],
    )
