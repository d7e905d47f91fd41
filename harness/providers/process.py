"""Starting a real server process: own process group, log file, readiness with a deadline.

Why a process group per server: a server may fork helpers (containerd forks shims,
dockerd forks its containerd); stopping the group stops them together, and the janitor
records the group so a killed run can still be swept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import journal
from harness.errors import PortInUse, ProviderFailed, TooSlow
from harness.janitor import terminate
from harness.run import Run
from harness.wait import wait_for


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_port_free(port: int, *, what: str) -> None:
    """Fail with one clear line when ``127.0.0.1:port`` is taken.

    Raises:
        PortInUse: something already listens there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUse(
                f"{what}: 127.0.0.1:{port} is already in use ({exc.strerror})",
                fix="choose another port or stop the process listening there",
            ) from None


def tcp_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_open(path: str | Path, timeout: float = 0.2) -> bool:
    """True when a unix stream socket at ``path`` accepts a connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


class ManagedProcess:
    """A server process owned by a run."""

    def __init__(
        self,
        run: Run,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.run = run
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = run.child_env(env)
        self.cwd = cwd
        self.log_path = run.path("logs", mkdir=True) / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, "process not started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        """Spawn in a new session, stdout+stderr to the log file; register with the janitor."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise ProviderFailed(f"cannot start {self.name}: {exc}", fix="./ci/bootstrap") from None
        finally:
            log.close()
        self.run.janitor.process(self.popen.pid, name=self.name, group=True)
        journal.emit(self.name, "started", pid=self.popen.pid, argv=" ".join(self.argv))
        return self

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Wait until ``probe()`` is true; fail early if the process dies.

        Raises:
            ProviderFailed: the process exited, or the deadline passed (log tail included).
        """
        t0 = time.monotonic()

        def check() -> bool:
            if not self.alive():
                raise ProviderFailed(
                    f"{self.name} exited with code {self.popen.returncode if self.popen else '?'}"
                    f" before {what}; log tail:\n{self.log_tail()}"
                )
            return probe()

        try:
            wait_for(check, timeout=timeout, what=f"{self.name}: {what}", interval=0.02)
        except ProviderFailed:
            raise
        except TooSlow as exc:
            raise ProviderFailed(f"{exc.message}; log tail:\n{self.log_tail()}") from None
        journal.emit(self.name, "ready", pid=self.pid, seconds=round(time.monotonic() - t0, 3))

    def stop(self, *, sig: int = signal.SIGTERM, grace: float = 5.0) -> int | None:
        """Stop the whole process group; SIGKILL after ``grace``. Returns the exit code."""
        if self.popen is None:
            return None
        pid = self.popen.pid
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        terminate([])
        journal.emit(self.name, "stopped", pid=pid, code=self.popen.returncode)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the server alone (not its group): a crash, as a fault."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
            journal.emit(self.name, "killed", pid=self.popen.pid)
