"""CRI on containerd 2.x with the stub as the sandbox runtime: a pod comes and goes cleanly."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.checks import sandbox as chk
from harness.providers import sandbox_image
from harness.wait import wait_for

pytestmark = pytest.mark.needs("busybox")


@pytest.mark.needs("containerd")
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


def test_sandbox_image_is_deterministic(tmp_path: Path) -> None:
    a = sandbox_image.build(tmp_path / "a.tar").read_bytes()
    b = sandbox_image.build(tmp_path / "b.tar").read_bytes()
    assert a == b
    assert sandbox_image.cached().read_bytes() == a


def _blobs(layout: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(layout)) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_sandbox_image_entrypoint_runs(tmp_path: Path) -> None:
    """The image is a real one: its entrypoint runs in a root made of its layer alone."""
    files = _blobs(sandbox_image.build(tmp_path / "img.tar").read_bytes())
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    layer = files["blobs/sha256/" + manifest["layers"][0]["digest"][7:]]
    root = tmp_path / "rootfs"
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        tar.extractall(root, filter="data")
    entry = config["config"]["Entrypoint"]
    assert (root / entry[0].lstrip("/")).is_file()
    # the same binary, asked for a quick applet instead of the long sleep, inside that root
    done = subprocess.run(
        ["chroot", str(root), entry[0], "true"], capture_output=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stderr
