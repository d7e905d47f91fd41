"""The node leak checker on a real kind node: each leak shape found and attributed, a clean
node clean, and a node it cannot read never "clean" nor "leaked".

Shapes are planted deterministically in the node (no race): a stub pod whose shims fail their
Shutdown (containerd 1.6.20 forgets them — the real leak, attributed to its pod from the CRI
labels learnt while it ran); a process named like a stub daemon with no registry entry; a
stale registry entry; a task process whose daemon is gone (the stub's task marker). Uses the
session's kind cluster (``harness.kind.fixtures``), so under ``./ci/test`` it shares the one
cluster with the kind suites.
"""

from __future__ import annotations

import json

import pytest

from harness.checks.node_leaks import NodeLeakChecker
from harness.kind.fixtures import stub_pod, wait_running
from harness.providers.kube.api import PODS
from harness.pytest_plugin.sandbox import failpoint_annotations
from harness.shim import identity
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("kind"), pytest.mark.timeout(900)]

#: a process that names itself like a stub daemon (prctl), then sleeps: no registry entry
FAKE_DAEMON = (
    "import ctypes,time\n"
    f"ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b'{identity.NAME}'), 0, 0, 0)\n"
    "time.sleep(600)\n"
)


def _spawn(cluster, node: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached in ``node``; its pid there."""
    envs = [f"{k}={v}" for k, v in (env or {}).items()]
    out = cluster.exec(
        node, "sh", "-c", 'env "$@" >/dev/null 2>&1 & echo $!', "spawn", *envs, *argv
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.decode().strip())


def test_leaked_shims_are_found_attributed_and_reaped(kind_cluster, kind_truth, kind_namespace):
    checker, ns = kind_cluster.checker, kind_namespace
    ann = failpoint_annotations(Shutdown="1*error(please retry)")
    kind_truth.create(PODS, ns, stub_pod("leaky", annotations=ann))
    pod = wait_running(kind_truth, ns, "leaky")
    node = pod["spec"]["nodeName"]
    assert checker.check(timeout=5, pods={f"{ns}/leaky"}).ok  # running: nothing leaked yet
    ids = checker.containers_of(ns, "leaky")
    assert sorted(p.role for p in ids.values()) == ["container", "sandbox"], ids
    kind_truth.delete(PODS, ns, "leaky")
    wait_for(lambda: kind_truth.get(PODS, ns, "leaky") is None, timeout=60, what="pod gone")
    found = checker.check(timeout=3, pods={f"{ns}/leaky"})
    assert found.observed and not found.ok, found
    leaks = {x["container_id"]: x for x in found.facts["leaks"]}
    assert set(leaks) == set(ids), (leaks, ids)
    for cid, x in leaks.items():
        assert x["kind"] == "shim-process" and x["node"] == node
        assert x["pod"] == f"{ns}/leaky" and x["role"] == ids[cid].role
        assert x["shim_alive"] and x["shim_answers"] and x["shim_status"] == "NO_TASK"
        assert x["containerd_task"] == ""
    assert found.facts["pods"] == [f"{ns}/leaky"] and found.facts["unattributed"] == 0
    done = checker.reap(checker.find(pods={f"{ns}/leaky"}))
    assert len(done) == 4, done  # two daemons killed, two sets of registry files removed
    assert checker.check(timeout=10, pods={f"{ns}/leaky"}).ok


def test_unregistered_daemon_stale_entry_and_orphan(kind_cluster, kind_namespace):
    cluster, checker = kind_cluster.cluster, kind_cluster.checker
    node = cluster.nodes[0]
    before = checker.find()
    daemon = _spawn(cluster, node, ["python3", "-c", FAKE_DAEMON])
    orphan = _spawn(
        cluster,
        node,
        ["sleep", "600"],
        {identity.ENV_TASK: "k8s.io/orphan-task", identity.ENV_SHIM_PID: "999999:1"},
    )
    stale = {"id": "stale-entry", "namespace": "k8s.io", "pid": 999998, "pid_start": 1}
    cluster.exec(
        node,
        "sh",
        "-c",
        f"cat > /run/reconverge-shim/0000stale.json <<'E'\n{json.dumps(stale)}\nE",
    )
    try:
        seen = wait_for(
            lambda: {x.kind: x for x in checker.find(ignore=before)},
            timeout=30,
            what="three planted leaks seen",
            accept=lambda got: len(got) == 3,
        )
        assert seen["shim-unregistered"].pid == daemon and seen["shim-unregistered"].pod is None
        assert seen["task-orphan"].pid == orphan
        assert seen["task-orphan"].container_id == "orphan-task"
        assert seen["registry-stale"].container_id == "stale-entry"
        # a filter by pod or namespace drops what cannot be attributed
        assert checker.find(k8s_namespace=kind_namespace, ignore=before) == []
    finally:
        cluster.exec(node, "kill", "-9", str(daemon), str(orphan))
        cluster.exec(node, "rm", "-f", "/run/reconverge-shim/0000stale.json")
    assert checker.check(timeout=10, ignore=before).ok


def test_unreadable_node_is_unobservable(kind_cluster):
    cluster = kind_cluster.cluster
    node = cluster.nodes[0]

    class Elsewhere:
        """The same engine, a node that does not exist: every exec fails."""

        nodes = ["rcv-no-such-node"]

        def exec(self, _node, *argv, **kw):
            return cluster.exec("rcv-no-such-node", *argv, **kw)

    gone = NodeLeakChecker(Elsewhere()).check(timeout=1)
    assert not gone.observed and "rcv-no-such-node" in gone.symptom, gone
    out = cluster.exec(node, "systemctl", "stop", "containerd")
    assert out.returncode == 0, out.stderr
    try:
        blind = NodeLeakChecker(cluster).check(timeout=2)
        assert not blind.observed, blind
        assert "containerd" in blind.symptom, blind
    finally:
        cluster.exec(node, "systemctl", "start", "containerd")
        wait_for(
            lambda: cluster.exec(node, "ctr", "version").returncode == 0,
            timeout=60,
            what="containerd back",
        )
    assert NodeLeakChecker(cluster).check(timeout=10).observed
