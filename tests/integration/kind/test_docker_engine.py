"""The harness's own dockerd as kind needs it: privileged containers, a per-run bridge
network, 127.0.0.1 publishing, and nothing left after a clean run or a SIGKILLed one."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness import janitor
from harness import run as run_mod
from harness.providers import docker
from harness.wait import wait_for

pytestmark = [
    pytest.mark.needs("docker"),
    pytest.mark.skipif(os.geteuid() != 0, reason="dockerd needs root"),
]


def busybox_tar() -> bytes:
    """A one-binary image: Debian's static busybox and a few applet links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add("/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "grep", "nc", "sleep", "cat", "echo"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(link)
        for d in ("proc", "sys", "dev", "etc", "tmp"):
            entry = tarfile.TarInfo(d)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(entry)
    return buf.getvalue()


@pytest.fixture
def engine(short_run_root: Path):
    os.environ["RECONVERGE_RUN_ROOT"] = str(short_run_root)
    run = run_mod.start(purpose="test-docker")
    try:
        eng = docker.engine(run, private=True)
        out = eng.docker("import", "-", "rcv-busybox:1", input=busybox_tar())
        assert out.returncode == 0, out.stderr
        yield run, eng
    finally:
        run.close()
        os.environ.pop("RECONVERGE_RUN_ROOT", None)


def test_privileged_run_and_exec_get_every_grantable_capability(engine) -> None:
    _run, eng = engine
    out = eng.docker(
        "run", "--rm", "--privileged", "rcv-busybox:1", "grep", "CapEff", "/proc/1/status"
    )
    assert out.returncode == 0, out.stderr.decode()
    eff = int(out.stdout.decode().split()[1], 16)
    bnd = int(Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0], 16)
    assert eff & ~bnd == 0  # nothing the machine cannot grant
    assert eff & (1 << 21)  # CAP_SYS_ADMIN: still privileged
    eng.docker("run", "-d", "--privileged", "--name", "c1", "rcv-busybox:1", "sleep", "300")
    ex = eng.docker("exec", "--privileged", "c1", "grep", "CapEff", "/proc/self/status")
    assert ex.returncode == 0, ex.stderr.decode()
    assert int(ex.stdout.decode().split()[1], 16) == eff


def test_bridge_network_publishes_on_loopback_and_connects_containers(engine) -> None:
    run, eng = engine
    net = docker.network(run, eng)
    assert Path(f"/sys/class/net/{net.bridge}").exists()
    serve = "while true; do echo hello | nc -l -p 8080; done"
    out = eng.docker(
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        net.name,
        "-p",
        "127.0.0.1::8080",
        "rcv-busybox:1",
        "sh",
        "-c",
        serve,
    )
    assert out.returncode == 0, out.stderr.decode()
    port = eng.docker("port", "srv", "8080").stdout.decode().strip()
    host, _, p = port.rpartition(":")
    assert host == "127.0.0.1", port

    def hello() -> bytes:
        with socket.create_connection(("127.0.0.1", int(p)), timeout=2) as s:
            return s.recv(16)

    assert wait_for(hello, timeout=20, what="hello through 127.0.0.1 publishing") == b"hello\n"
    ip = eng.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "srv"
    )
    peer = eng.docker(
        "run",
        "--rm",
        "--network",
        net.name,
        "rcv-busybox:1",
        "sh",
        "-c",
        f"nc {ip.stdout.decode().strip()} 8080 </dev/null",
    )
    assert peer.stdout == b"hello\n", peer.stderr.decode()
    # name resolution between containers (kind joins workers by the control plane's name)
    by_name = eng.docker(
        "run", "--rm", "--network", net.name, "rcv-busybox:1", "sh", "-c", "nc srv 8080 </dev/null"
    )
    assert by_name.stdout == b"hello\n", by_name.stderr.decode()


KILLED = """
import os, signal
from harness import run as run_mod
from harness.providers import docker

def test_killed(tmp_path):
    run = run_mod.start(purpose="killed")
    eng = docker.engine(run, private=True)
    eng.docker("import", "-", "bb:1", input=open({tar!r}, "rb").read())
    net = docker.network(run, eng)
    run.janitor.container("orphan", docker_host=eng.host, private=True)
    out = eng.docker("run", "-d", "--privileged", "--name", "orphan", "--network", net.name,
                     "bb:1", "sleep", "1000")
    assert out.returncode == 0, out.stderr
    open({marker!r}, "w").write(net.bridge + " " + str(eng.proc.pid) + " " + eng.cgroup_parent)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kill_dockerd", [False, True], ids=["dockerd-alive", "dockerd-killed"])
def test_killed_run_sweep_removes_container_network_dockerd(killed_run, tmp_path, kill_dockerd):
    tar = tmp_path / "bb.tar"
    tar.write_bytes(busybox_tar())
    marker = tmp_path / "marker"
    killed = killed_run(KILLED.format(tar=str(tar), marker=str(marker)))
    bridge, dockerd_pid, parent = marker.read_text().split()
    own = docker.own_cgroups()
    cgroups = [m / own.get(m.name, "/").lstrip("/") / parent for m in janitor.cgroup_mounts()]
    held = [c for c in cgroups if c.is_dir() and any(c.rglob("cgroup.procs"))]
    sleepers = [pid for c in held for f in c.rglob("cgroup.procs") for pid in f.read_text().split()]
    assert sleepers, "the orphan container should be running before the sweep"
    assert Path(f"/sys/class/net/{bridge}").exists()
    if kill_dockerd:
        os.kill(int(dockerd_pid), 9)  # the sweep must not need dockerd
    killed.sweep()
    assert not Path(f"/sys/class/net/{bridge}").exists(), f"bridge {bridge} left"
    assert not Path(f"/proc/{dockerd_pid}").exists() or janitor._is_zombie(int(dockerd_pid))
    sleepers = sorted(set(sleepers))
    left = [
        p for p in sleepers if janitor.proc_start_time(int(p)) and not janitor._is_zombie(int(p))
    ]
    assert not left, f"container processes left: {left}"
    assert not [c for c in cgroups if c.exists()], "cgroups left"
    assert not janitor.pids_marked(killed.run_dir.name)
    assert not killed.run_dir.exists()
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0
