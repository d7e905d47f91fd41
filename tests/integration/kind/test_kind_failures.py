"""kind failing: one line naming the cause and the fix, exit 2, node logs kept, nothing left;
and ``--reconverge-kube=kind`` without kind fails under strict instead of skipping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import janitor
from harness import run as run_mod
from harness.errors import PortInUse, ProviderFailed
from harness.providers.kube.kind import KindProvider
from harness.pytest_plugin import skip_unless_strict

pytestmark = [
    pytest.mark.needs("docker"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
    pytest.mark.timeout(600),
]


@pytest.fixture
def provider(request) -> KindProvider:
    p = KindProvider()
    a = p.availability()
    if not a:
        skip_unless_strict(request.config, f"kind {a.reason}")
    return p


def test_port_in_use_fails_before_anything_starts(provider, short_run_root) -> None:
    os.environ["RECONVERGE_RUN_ROOT"] = str(short_run_root)
    run = run_mod.start(purpose="test-kind-port")
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            with pytest.raises(PortInUse) as err:
                provider.start(run, api_port=port)
        assert f"127.0.0.1:{port} is already in use" in err.value.one_line()
        assert err.value.exit_code == 2
        assert not (run.dir / "logs" / "dockerd.log").exists()  # nothing was started
    finally:
        run.close()
        os.environ.pop("RECONVERGE_RUN_ROOT", None)


# kubeadm validates its configuration first: an unparsable pod subnet fails init at once
BAD_SUBNET = "kind: ClusterConfiguration\nnetworking:\n  podSubnet: not-a-cidr\n"


def test_kubeadm_failing_in_the_node_keeps_its_logs_and_leaves_nothing(
    provider, short_run_root, tmp_path
) -> None:
    os.environ["RECONVERGE_RUN_ROOT"] = str(short_run_root)
    run = run_mod.start(purpose="test-kind-fail")
    kept = tmp_path / "logs"
    try:
        with pytest.raises(ProviderFailed) as err:
            provider.start(run, extra_patches=[BAD_SUBNET])
        line = err.value.one_line()
        assert "\n" not in line and "kind create cluster failed" in line, line
        # the cause is kubeadm's own error, quoted from the node
        assert "kubeadm init in" in line and "couldn't parse subnet" in line, line
        assert err.value.exit_code == 2 and err.value.fix
        logs = run.dir / "logs"
        assert "kubeadm init" in (logs / "kind-create.log").read_text()
        node = logs / "kind" / f"rcv-{run.id}-control-plane"
        assert (node / "kubelet.log").is_file() and (node / "containerd.log").is_file()
        assert "detected cgroup v1" in (node / "boot.log").read_text()
        subprocess.run(["cp", "-a", str(logs), str(kept)], check=True)
        # the failed cluster is deleted at once (its logs are kept), not at the run's end
        names = subprocess.run(
            ["docker", "ps", "-aq"],
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_HOST": f"unix:///tmp/rcvd-{run.id}/docker.sock"},
        )
        assert names.returncode == 0 and names.stdout.strip() == "", names
    finally:
        done = run.close()
        os.environ.pop("RECONVERGE_RUN_ROOT", None)
    assert not [d for d in done if d.startswith("FAILED")], done
    for mount in janitor.cgroup_mounts():
        assert not (mount / f"rcv-{run.id}").exists()
    assert not Path(f"/sys/class/net/rcvb{run.id[1:]}").exists()


def test_strict_run_on_kind_fails_when_kind_is_unavailable(tmp_path, short_run_root) -> None:
    (tmp_path / "test_needs_kube.py").write_text(
        textwrap.dedent(
            """
            def test_uses_the_cluster(kube_cluster):
                pass
            """
        )
    )
    env = {
        **os.environ,
        "RECONVERGE_RUN_ROOT": str(short_run_root),
        "RECONVERGE_KIND_BIN": str(tmp_path / "no-such-kind"),
    }
    common = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    strict = subprocess.run(
        [*common, "--reconverge-kube", "kind", "--reconverge-strict"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    # a fixture that fails is an error: exit 1, never a skip
    assert strict.returncode == 1, strict.stdout[-2000:]
    assert "kube: kind unavaila" in strict.stdout and "skipped" not in strict.stdout
    lax = subprocess.run(
        [*common, "--reconverge-kube", "kind", "-rs"],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "CI"},
        cwd=tmp_path,
        timeout=120,
    )
    assert "1 skipped" in lax.stdout, lax.stdout[-2000:]
