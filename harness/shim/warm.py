"""The warm start path as a run sees it: the launcher on containerd's PATH, one fork server.

``for_run(run)`` returns what a containerd of that run needs in its environment so that
``containerd-shim-stub-v2`` is the C launcher and finds the run's fork server; the first
call per run starts the server (a :class:`~harness.providers.process.ManagedProcess`,
registered with the run's janitor as a process group), later calls reuse it while it
answers. Switch the whole path off with ``RECONVERGE_SHIM_WARM=0`` (containerd then finds
the cold console script, as before); a containerd that must not use it passes
``warm=False`` to the provider.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness import journal
from harness.errors import ReconvergeError
from harness.providers.process import ManagedProcess, unix_open
from harness.run import Run
from harness.shim import launcher

ENV_SWITCH = "RECONVERGE_SHIM_WARM"
#: In containerd's environment: the fork server's socket (read by ``launcher.c``).
ENV_SOCKET = "RECONVERGE_SHIM_FORK"
#: In containerd's environment: the cold shim the launcher execs when no server answers.
ENV_COLD = "RECONVERGE_SHIM_COLD"
SOCKET_NAME = "shimfork.sock"


def enabled() -> bool:
    """False when ``RECONVERGE_SHIM_WARM=0`` switches the warm path off."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def cold_binary() -> Path:
    """The console script ``containerd-shim-stub-v2`` of this virtualenv (the cold path)."""
    return Path(sys.executable).parent / launcher.BINARY


def socket_path(run: Run) -> Path:
    """Where the run's fork server listens (short: ``sun_path`` is 108 bytes)."""
    return run.dir / SOCKET_NAME


class WarmShim:
    """The launcher's directory (first on containerd's PATH) and the environment it needs."""

    def __init__(self, bin_dir: Path, socket: Path, server: ManagedProcess | None) -> None:
        self.bin_dir = bin_dir
        self.socket = socket
        self.server = server

    def env(self) -> dict[str, str]:
        env = {ENV_SOCKET: str(self.socket)}
        cold = cold_binary()
        if cold.exists():  # else the launcher looks for the cold shim on PATH itself
            env[ENV_COLD] = str(cold)
        return env


def start_server(run: Run, *, timeout: float = 20.0) -> ManagedProcess:
    """Start the run's fork server and wait until it accepts connections."""
    path = socket_path(run)
    proc = ManagedProcess(
        run, "shim-fork", [sys.executable, "-m", "harness.shim.forkserver", str(path)]
    ).start()
    proc.wait_ready(lambda: unix_open(path), timeout=timeout, what=f"accepting on {path}")
    journal.emit("shim-fork", "ready", socket=str(path), pid=proc.pid)
    return proc


_servers: dict[str, ManagedProcess] = {}


def for_run(run: Run) -> WarmShim | None:
    """The warm path for ``run`` (server started once per run), or None when switched off
    or when the launcher cannot be built here (no compiler, no source in this install):
    then containerd finds the cold console script, and the journal says why
    (``shim-fork unavailable``; the benchmark's hit rate shows it too)."""
    if not enabled():
        return None
    try:
        binary = launcher.ensure()
    except ReconvergeError as exc:
        journal.emit("shim-fork", "unavailable", reason=exc.message)
        return None
    path = socket_path(run)
    server = _servers.get(run.id)
    if server is None or not server.alive() or not unix_open(path):
        server = _servers[run.id] = start_server(run)
    return WarmShim(binary.parent, path, server)
