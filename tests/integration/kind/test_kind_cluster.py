"""A real kind cluster from our node image: Ready, a pod on the stub RuntimeClass runs as a
real process in the node, faults (API-server restart, etcd compaction) work, and nothing —
container, network, dockerd, shim, cgroup, host sysctl — is left after a clean run or after
a SIGKILLed run's sweep."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import janitor
from harness import run as run_mod
from harness.providers import docker
from harness.providers.kube.api import PODS
from harness.providers.kube.kind import NODES, RUNTIME_CLASS, KindProvider, smoke_pod
from harness.pytest_plugin import skip_unless_strict
from harness.wait import wait_for

pytestmark = [
    pytest.mark.needs("docker"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.timeout(900),
]

HOST_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/ip_forward",
)


def _sysctls() -> dict[str, str]:
    return {k: Path("/proc/sys", k).read_text().strip() for k in HOST_SYSCTLS}


@pytest.fixture
def provider(request) -> KindProvider:
    p = KindProvider()
    a = p.availability()
    if not a:
        skip_unless_strict(request.config, f"kind {a.reason}")
    return p


def _left_on_host(run_id: str, bridge: str, dockerd_pid: int) -> list[str]:
    left = []
    if Path(f"/sys/class/net/{bridge}").exists():
        left.append(f"bridge {bridge}")
    if janitor.proc_is(dockerd_pid, None):
        left.append(f"dockerd {dockerd_pid}")
    own = docker.own_cgroups()
    for mount in janitor.cgroup_mounts():
        cg = mount / own.get(mount.name, "/").lstrip("/") / f"rcv-{run_id}"
        if cg.exists():
            left.append(f"cgroup {cg}")
    if Path(f"/tmp/rcvd-{run_id}").exists():
        left.append(f"/tmp/rcvd-{run_id}")
    marked = [p for p in janitor.pids_marked(run_id) if not janitor._is_zombie(p)]
    if marked:
        left.append(f"processes {marked}")
    return left


def test_cluster_runs_a_stub_pod_and_leaves_nothing(provider, short_run_root) -> None:
    os.environ["RECONVERGE_RUN_ROOT"] = str(short_run_root)
    before = _sysctls()
    run = run_mod.start(purpose="test-kind")
    try:
        t0 = time.monotonic()
        cluster = provider.start(run)
        print(f"kind up in {time.monotonic() - t0:.1f} s: {cluster.timings}")
        bridge = cluster.network.bridge
        dockerd_pid = cluster.engine.proc.pid
        kube = cluster.truth()
        nodes, _ = kube.list(NODES)
        assert [n["metadata"]["name"] for n in nodes] == cluster.nodes
        assert cluster.creds.server == f"https://127.0.0.1:{cluster.api_port}"
        # the smoke pod proved the runtime once; now one the test watches to its end
        kube.create(PODS, "default", smoke_pod("stub-probe"))

        def running() -> dict | bool:
            pod = kube.get(PODS, "default", "stub-probe") or {}
            return pod if pod.get("status", {}).get("phase") == "Running" else False

        pod = wait_for(running, timeout=120, what="stub-probe Running", interval=0.5)
        assert pod["spec"]["runtimeClassName"] == RUNTIME_CLASS
        cid = pod["status"]["containerStatuses"][0]["containerID"].split("//")[1]
        shims = {s["id"]: s for s in cluster.node_shims()}
        assert cid in shims, f"no stub registry entry for {cid[:12]}: {list(shims)}"
        procs = cluster.node_processes()
        daemon = shims[cid]["pid"]
        assert "harness.shim.daemon" in " ".join(procs[daemon])
        task = next(t for t in cluster.node_tasks() if t["id"] == cid)
        assert procs[int(task["pid"])] == ["sleep", "1000000"], procs[int(task["pid"])]
        kube.delete(PODS, "default", "stub-probe", grace_seconds=0)
        wait_for(
            lambda: kube.get(PODS, "default", "stub-probe") is None,
            timeout=60,
            what="stub-probe deleted",
        )
        wait_for(
            lambda: (
                not [s for s in cluster.node_shims() if s["id"] == cid]
                and int(task["pid"]) not in cluster.node_processes()
            ),
            timeout=60,
            what="the pod's shim and task gone from the node",
        )
        # faults the seed-d suites use
        assert cluster.compact() > 0
        took = cluster.restart_apiserver(graceful=True)
        assert took < 120
        assert kube.list(NODES)[0]
        print(f"restart_apiserver {took:.1f} s, memory {cluster.memory_bytes() / 2**20:.0f} MiB")
    finally:
        done = run.close()
        os.environ.pop("RECONVERGE_RUN_ROOT", None)
    assert not [d for d in done if d.startswith("FAILED")], done
    assert _left_on_host(run.id, bridge, dockerd_pid) == []
    assert _sysctls() == before, "the cluster changed the host's global sysctls"


KILLED = """
import json, os, signal
from harness import run as run_mod
from harness.providers.kube.kind import KindProvider

def test_killed():
    run = run_mod.start(purpose="killed-kind")
    cluster = KindProvider().start(run, smoke=False)
    open({marker!r}, "w").write(json.dumps({{
        "run": run.id, "bridge": cluster.network.bridge,
        "dockerd": cluster.engine.proc.pid, "nodes": cluster.nodes,
    }}))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_run_sweep_removes_the_cluster(provider, killed_run, tmp_path) -> None:
    marker = tmp_path / "marker.json"
    killed = killed_run(KILLED.format(marker=str(marker)))
    info = json.loads(marker.read_text())
    run_id = info["run"]
    # the cluster outlived its owner: node containers run under the run's cgroup
    pids = janitor._cgroup_pids(Path("/sys/fs/cgroup/pids") / f"rcv-{run_id}")
    assert pids, "the node containers should be running before the sweep"
    killed.sweep()
    assert _left_on_host(run_id, info["bridge"], info["dockerd"]) == []
    alive = [p for p in pids if janitor.proc_start_time(p) and not janitor._is_zombie(p)]
    assert not alive, f"node processes left: {alive}"
    assert not killed.run_dir.exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"rcv-{run_id}" not in ps
