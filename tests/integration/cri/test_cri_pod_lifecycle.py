"""CRI on containerd 2.x with the stub as the sandbox runtime: a pod comes and goes cleanly."""

from __future__ import annotations

from harness.checks import sandbox as chk
from harness.providers import sandbox_image
from harness.wait import wait_for


def test_pod_sandbox_lifecycle_leaves_nothing(cri_containerd, reconverge_run):
    env = cri_containerd("v2.1.5")
    assert env.client.version() == "containerd v2.1.5"
    sid = env.client.run_pod_sandbox("clean")
    assert env.client.list_pod_sandboxes() == {sid: "SANDBOX_READY"}
    env.client.stop_pod_sandbox(sid)
    # 2.x's podsandbox records NOTREADY from its exit handler, which may trail Stop's return
    wait_for(
        env.client.list_pod_sandboxes,
        timeout=10,
        what="sandbox NOTREADY after StopPodSandbox",
        accept=lambda pods: pods == {sid: "SANDBOX_NOTREADY"},
    )
    env.client.remove_pod_sandbox(sid)
    assert env.client.list_pod_sandboxes() == {}
    outcome = chk.leak(
        reconverge_run.dir,
        address=env.containerd.address,
        state_dir=env.containerd.state,
        namespace="k8s.io",
        sids=[sid],
        timeout=2.0,
    )
    assert outcome.ok, str(outcome)


def test_sandbox_image_is_deterministic(tmp_path):
    a = sandbox_image.build(tmp_path / "a.tar").read_bytes()
    b = sandbox_image.build(tmp_path / "b.tar").read_bytes()
    assert a == b
