"""The control-plane archives import into containerd 1.6.20 under kubeadm's names, and run.

What a kind node's containerd will do with them, on a private containerd here: import
into ``k8s.io``, list the references kubeadm asks for, and start each binary the way
kubeadm's manifests do (by name through the image's PATH, kube-proxy by absolute path,
coredns and pause through their entrypoints) with runc.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.images import busybox, control_plane
from harness.providers.containerd import Containerd
from harness.run import Run
from harness.wait import wait_for

NS = "k8s.io"
pytestmark = [pytest.mark.needs("containerd"), pytest.mark.needs("busybox")]


def _cached_or_skip() -> None:
    missing = control_plane.missing()
    if missing:
        pytest.skip(f"not built yet: {', '.join(missing)} (run: reconverge build ensure)")


@pytest.fixture(scope="module")
def imported(reconverge_run: Run) -> Iterator[tuple[Containerd, list[control_plane.Archive]]]:
    """A private containerd with every control-plane archive and the busybox pod image."""
    _cached_or_skip()
    archives = [*control_plane.archives(log=lambda s: None), busybox.archive(log=lambda s: None)]
    c = Containerd(reconverge_run, name="ctd-images").start()
    try:
        for a in archives:
            c.ctr(NS, "images", "import", "--snapshotter", "native", str(a.path), timeout=120)
        yield c, archives
    finally:
        c.stop()


def _run(c: Containerd, ref: str, cid: str, *args: str) -> str:
    return c.ctr(NS, "run", "--rm", "--snapshotter", "native", ref, cid, *args, timeout=60)


def test_every_ref_is_listed_in_k8s_io(imported):
    c, archives = imported
    listed = set(c.ctr(NS, "images", "ls", "-q").split())
    assert {a.ref for a in archives} <= listed
    assert set(control_plane.refs()) <= listed
    assert busybox.NAME in listed


@pytest.mark.parametrize(
    "name", ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]
)
def test_kube_binaries_start_by_name_and_report_the_release(imported, name):
    c, _ = imported
    out = _run(c, f"registry.k8s.io/{name}:v1.34.4", f"v-{name}", name, "--version")
    assert "Kubernetes v1.34.4" in out


def test_kube_proxy_at_the_daemonsets_absolute_path(imported):
    c, _ = imported
    ref = "registry.k8s.io/kube-proxy:v1.34.4"
    assert "Kubernetes v1.34.4" in _run(c, ref, "kp", "/usr/local/bin/kube-proxy", "--version")


def test_etcd_by_name_is_kubeadms_version(imported):
    c, _ = imported
    out = _run(c, "registry.k8s.io/etcd:3.6.5-0", "etcd-v", "etcd", "--version")
    assert "etcd Version: 3.6.5" in out


def test_coredns_entrypoint_has_every_plugin_of_kubeadms_corefile(imported):
    c, _ = imported
    ref = "registry.k8s.io/coredns/coredns:v1.12.1"
    assert "CoreDNS-1.12.1" in _run(c, ref, "cdns", "/coredns", "-version")
    plugins = set(_run(c, ref, "cdnsp", "/coredns", "-plugins").split())
    corefile = ("errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache",
                "loop", "reload", "loadbalance")  # fmt: skip
    assert set(corefile) <= plugins
    assert not {"route53", "azure", "clouddns", "etcd", "trace"} & plugins


def test_busybox_pod_image_runs_commands_by_name(imported):
    c, _ = imported
    assert _run(c, busybox.NAME, "bb", "sh", "-c", "echo ok; sleep 0").strip() == "ok"


def _task(c: Containerd, cid: str) -> tuple[int, str]:
    """(pid, status) from ``ctr task ls``; (0, "GONE") when the task is not listed."""
    for line in c.ctr(NS, "task", "ls").splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return int(fields[1]), fields[2]
    return 0, "GONE"


def _catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


def test_pause_runs_as_pid_1_until_sigterm_then_exits_0(imported):
    """As PID 1 an unhandled SIGTERM is dropped (busybox sleep would keep running)."""
    c, _ = imported
    cid = "pause-t"
    ref = "registry.k8s.io/pause:3.10.1"
    c.ctr(NS, "run", "-d", "--null-io", "--snapshotter", "native", ref, cid)
    try:
        pid, status = _task(c, cid)
        assert status == "RUNNING"
        # the handler exists once the Go runtime ran signal.Notify: wait for that, not a time
        wait_for(lambda: _catches_sigterm(pid), timeout=10, what="pause handling SIGTERM")
        c.ctr(NS, "task", "kill", "-s", "SIGTERM", cid)
        wait_for(
            lambda: _task(c, cid)[1],
            timeout=10,
            what="pause stopped by SIGTERM",
            accept=lambda s: s == "STOPPED",
        )
        deleted = subprocess.run(
            [str(c.ctr_binary), "--address", str(c.address), "-n", NS, "task", "delete", cid],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert deleted.returncode == 0, f"pause exited non-zero: {deleted.stderr}"
    finally:
        if _task(c, cid)[1] != "GONE":
            c.ctr(NS, "task", "delete", "-f", cid)
        c.ctr(NS, "container", "delete", cid)


@pytest.mark.parametrize(
    ("cmd", "backend"), [("iptables", "nf_tables"), ("iptables-legacy", "legacy")]
)
def test_kube_proxy_image_runs_iptables(imported, cmd, backend):
    """kube-proxy runs iptables inside its container: libraries and extensions must load."""
    c, _ = imported
    ref = "registry.k8s.io/kube-proxy:v1.34.4"
    assert f"({backend})" in _run(c, ref, f"ipt-{backend}", cmd, "--version")
    # a rule with a match extension (dlopened) in the container's own network namespace
    c.ctr(
        NS, "run", "--rm", "--snapshotter", "native", "--cap-add", "CAP_NET_ADMIN",
        ref, f"ipta-{backend}",
        cmd, "-w", "-A", "INPUT", "-m", "comment", "--comment", "reconverge", "-j", "ACCEPT",
        timeout=60,
    )  # fmt: skip
