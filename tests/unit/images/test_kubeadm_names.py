"""The names we build images under are exactly what the built kubeadm asks for.

Runs only when the Kubernetes bundle is cached (``reconverge build ensure kubernetes``);
kubeadm is given an explicit version, so it never looks up ``stable.txt`` on the network.
"""

from __future__ import annotations

import subprocess

import pytest

from harness import build
from harness.images import control_plane


@pytest.fixture(scope="module")
def kubeadm():
    path = build.locate("kubeadm")
    if path is None:
        pytest.skip("kubeadm not built yet (reconverge build ensure kubernetes)")
    return path


def test_kubeadm_config_images_list_matches_our_refs(kubeadm):
    version = build.DEFAULTS["kubernetes"]
    out = subprocess.run(
        [str(kubeadm), "config", "images", "list", "--kubernetes-version", version],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "NO_PROXY": "*"},
    )
    listed = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    assert listed == control_plane.refs(version)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("kube-apiserver", ["--version"]),
        ("kube-controller-manager", ["--version"]),
        ("kube-scheduler", ["--version"]),
        ("kube-proxy", ["--version"]),
        ("kubelet", ["--version"]),
        ("kubeadm", ["version", "-o", "short"]),
        ("kubectl", ["version", "--client"]),
    ],
)
def test_every_bundle_binary_is_version_stamped(kubeadm, name, args):
    path = build.binaries_dir("kubernetes") / name
    out = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60)
    assert build.DEFAULTS["kubernetes"] in out.stdout + out.stderr, out.stdout + out.stderr
    assert "v0.0.0-master" not in out.stdout + out.stderr
