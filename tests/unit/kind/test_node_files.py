"""What the node image's trees contain: the files kind, kubeadm, kubelet and containerd read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from harness.kind import layers, rootfs
from harness.providers.kube import kind


@pytest.fixture(scope="module")
def kube_tree(tmp_path_factory) -> Path:
    bins = tmp_path_factory.mktemp("bins")
    for b in layers.NODE_BINARIES:
        (bins / b).write_text("#!/bin/sh\n")
    tree = tmp_path_factory.mktemp("kube")
    layers.write_kube_files(tree, bins)
    return tree


@pytest.fixture(scope="module")
def stub_tree(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("stub")
    layers.write_stub_tree(tree)
    return tree


def test_trees_never_shadow_merged_usr_symlinks(kube_tree, stub_tree) -> None:
    # the base is merged-usr: a real lib/ or bin/ in a later tree would replace the symlink
    for tree in (kube_tree, stub_tree):
        tops = {p.name for p in tree.iterdir()}
        assert tops <= {"usr", "etc", "var", "kind", "opt"}, tops


def test_kind_reads_exactly_one_semver_line(kube_tree) -> None:
    assert (kube_tree / "kind/version").read_text() == "v1.34.4\n"
    assert (kube_tree / "kind/manifests/default-storage.yaml").is_file()
    assert (kube_tree / "etc/kubernetes/manifests").is_dir()


def test_units_enabled_and_host_touching_units_masked(kube_tree) -> None:
    sd = kube_tree / "etc/systemd/system"
    assert os.readlink(sd / "multi-user.target.wants/kubelet.service") == (
        "/etc/systemd/system/kubelet.service"
    )
    assert os.readlink(sd / "multi-user.target.wants/containerd.service").endswith(
        "containerd.service"
    )
    for unit in ("systemd-sysctl.service", "systemd-binfmt.service", "systemd-logind.service"):
        assert os.readlink(sd / unit) == "/dev/null", unit
    unit = (sd / "kubelet.service").read_text()
    assert "ConditionPathExists=/var/lib/kubelet/config.yaml" in unit
    assert "Slice=kubelet.slice" in unit and "KillMode=process" in unit
    dropin = (sd / "kubelet.service.d/10-kubeadm.conf").read_text()
    assert "--config=/var/lib/kubelet/config.yaml" in dropin
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert "ExecStart=\n" in dropin  # resets the unit's own ExecStart
    journal = (sd / "containerd.service.d/50-reconverge-journal.conf").read_text()
    assert "Environment=RECONVERGE_RUN_DIR=/run/reconverge-node" in journal
    tmpfiles = (kube_tree / "etc/tmpfiles.d/reconverge-node.conf").read_text()
    assert "L /run/reconverge-node/shims - - - - /run/reconverge-shim" in tmpfiles
    # systemd may not lower containerd's OOM score without CAP_SYS_RESOURCE
    assert "OOMScoreAdjust=0" in (sd / "containerd.service.d/10-kind.conf").read_text()


def test_containerd_config_for_1_6(kube_tree) -> None:
    cfg = tomllib.loads((kube_tree / "etc/containerd/config.toml").read_text())
    assert cfg["version"] == 2
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    runtimes = cri["containerd"]["runtimes"]
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    stub = runtimes[kind.STUB_HANDLER]
    assert stub["runtime_type"] == "io.containerd.stub.v2"
    assert "io.containerd.runtime.v2.shim.failpoint.*" in stub["pod_annotations"]
    assert "io.reconverge.stub.*" in stub["pod_annotations"]
    assert "disabled_plugins" not in cfg


def test_cni_template_renders_valid_json(kube_tree) -> None:
    text = (kube_tree / "kind/cni.conflist.in").read_text()
    doc = json.loads(text.replace("@SUBNET@", "10.244.3.0/24").replace("@GATEWAY@", "10.244.3.1"))
    bridge = doc["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == "10.244.3.0/24"


def test_entrypoint_is_valid_bash(kube_tree) -> None:
    entry = kube_tree / "usr/local/bin/reconverge-entrypoint"
    assert os.access(entry, os.X_OK)
    assert subprocess.run(["bash", "-n", str(entry)]).returncode == 0
    text = entry.read_text()
    for needle in ("detected cgroup v1", "make-rshared", "remount,ro /sys", "machine-id"):
        assert needle in text


def test_stub_tree_runs_the_shim_with_nothing_from_the_venv(kube_tree, stub_tree) -> None:
    lib = stub_tree / "opt/reconverge/lib"
    # the entry points are in the image, the code is mounted at /opt/reconverge
    shim = kube_tree / "usr/local/bin/containerd-shim-stub-v2"
    assert os.access(shim, os.X_OK)
    pth = kube_tree / "usr/lib/python3/dist-packages/reconverge.pth"
    assert pth.read_text().strip() == "/opt/reconverge/lib"
    assert not (stub_tree / "usr").exists()
    # -I: no site-packages, no environment: only the tree's own copy can satisfy the imports
    probe = (
        f"import sys; sys.path.insert(0, {str(lib)!r});"
        "import harness.shim.main, harness.shim.daemon, harness.shim.service, failpoints;"
        "import google.protobuf; print(harness.shim.daemon.__file__)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(lib))


def test_every_node_mounts_the_stub_read_only() -> None:
    doc = kind.config_document(1, nodes=3, stub=Path("/cache/stub-x/opt/reconverge"))
    for node in doc["nodes"]:
        assert node["extraMounts"] == [
            {
                "hostPath": "/cache/stub-x/opt/reconverge",
                "containerPath": "/opt/reconverge",
                "readOnly": True,
            }
        ]


def test_config_document_pins_loopback_port_and_our_cni() -> None:
    doc = kind.config_document(34567, nodes=2)
    net = doc["networking"]
    assert net["apiServerAddress"] == "127.0.0.1" and net["apiServerPort"] == 34567
    assert net["disableDefaultCNI"] is True and net["kubeProxyMode"] == "none"
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker"]
    patches = [yaml.safe_load(p) for p in doc["kubeadmConfigPatches"]]
    init = next(p for p in patches if p["kind"] == "InitConfiguration")
    # a merge patch replaces kind's list whole: preflight must be listed again
    assert init["skipPhases"][0] == "preflight"


def test_node_names_follow_kind() -> None:
    assert kind.node_names("c", 3) == ["c-control-plane", "c-worker", "c-worker2"]


def test_rootfs_digest_changes_with_packages(monkeypatch) -> None:
    before = rootfs.digest()
    monkeypatch.setattr(rootfs, "PACKAGES", (*rootfs.PACKAGES, "jq"))
    assert rootfs.digest() != before


KIND_FAILED = """\
 ✗ Starting control-plane 🕹️
ERROR: failed to create cluster: failed to init node with kubeadm: command "docker exec \
--privileged c-control-plane kubeadm init --config=/kind/kubeadm.conf --skip-token-print --v=6" \
failed with error: exit status 1

Command Output: I1202 08:43:50.648834     151 initconfiguration.go:260] loading configuration
W1202 08:43:50.649490     151 common.go:100] your configuration file uses a deprecated API spec
error: networking.podSubnet: Invalid value: "not-a-cidr": couldn't parse subnet
no stack trace

Stack Trace:
sigs.k8s.io/kind/pkg/errors.WithStack
"""


def test_failure_cause_is_kubeadms_error_when_kind_quotes_it() -> None:
    assert kind.failure_cause(KIND_FAILED) == (
        'kubeadm init in c-control-plane: error: networking.podSubnet: Invalid value: "not-a-cidr":'
        " couldn't parse subnet"
    )
    plain = "Creating cluster\nERROR: failed to create cluster: node(s) already exist\n"
    assert kind.failure_cause(plain) == "ERROR: failed to create cluster: node(s) already exist"
    assert kind.failure_cause("") == "no output"
