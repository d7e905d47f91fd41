"""toxiproxy on both backends, and the janitor after a SIGKILLed pytest run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from harness import janitor, run
from harness.providers import toxiproxy
from harness.providers.echo import EchoServer, roundtrip
from harness.wait import wait_for


@pytest.mark.needs("toxiproxy")
def test_process_backend_serves_proxies(reconverge_run):
    server = toxiproxy.start(reconverge_run, "process")
    try:
        assert server.client.version()
        with EchoServer() as echo:
            proxy = server.client.create("itest-echo", echo.address)
            assert roundtrip(proxy.host, proxy.port, b"ping") == b"ping\n"
            proxy.destroy()
    finally:
        server.stop()
    assert not server.proc.alive()


@pytest.mark.needs("toxiproxy", "docker")
def test_container_backend_serves_proxies(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path))
    r = run.start(purpose="container-test")
    try:
        server = toxiproxy.start(r, "container")
        with EchoServer() as echo:
            proxy = server.client.create("ctest-echo", echo.address)
            proxy.add_toxic("latency", latency=50)
            assert roundtrip(proxy.host, proxy.port, b"ping") == b"ping\n"
        server.stop()
    finally:
        r.close()
    assert janitor.pids_marked(r.id) == []


KILLED = """
import os, signal
from harness import journal

def test_hangs_then_killed(toxiproxy_server):
    print("PID", os.getpid(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.needs("toxiproxy")
def test_sigkilled_pytest_leaves_nothing_after_sweep(tmp_path):
    case = tmp_path / "test_killed_case.py"
    case.write_text(textwrap.dedent(KILLED))
    env = {**os.environ, "RECONVERGE_RUN_ROOT": str(tmp_path / "runs")}
    env.pop("CI", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(case),
            "-p",
            "no:cacheprovider",
            "-q",
            "-s",
            f"--rootdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == -signal.SIGKILL, out.stdout + out.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    owned = [r for r in janitor.load_resources(runs[0]) if r.kind == "process"]
    assert owned and all(janitor.proc_is(r.data["pid"], r.data["start"]) for r in owned)
    sweep = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "reconverge"), "janitor", "--sweep"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert "swept" in sweep.stdout
    wait_for(
        lambda: not any(janitor.proc_is(r.data["pid"], r.data["start"]) for r in owned),
        timeout=10,
        what="toxiproxy of the killed run gone",
    )
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
