"""A private containerd: own root, state, config and socket; never the system instance.

Why its PATH starts with the virtualenv's ``bin``: containerd resolves the runtime
``io.containerd.stub.v2`` to ``containerd-shim-stub-v2`` on *its own* PATH, and passes its
environment (including the run's ``RECONVERGE_*`` markers) on to every shim it launches,
so shims journal into the run and a sweep can find them. Ahead of it on PATH sits the warm
launcher (``harness/shim/warm.py``: a C binary that hands ``start``/``delete`` to the run's
shim fork server; ``RECONVERGE_SHIM_WARM=0`` leaves only the cold console script).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from harness import binaries, fixtures_dir, journal
from harness.errors import ReconvergeError
from harness.providers.process import ManagedProcess, free_port, tcp_open, unix_open
from harness.run import Run
from harness.shim import warm as shim_warm

FIXTURES = fixtures_dir.path("containerd")
STUB_RUNTIME = "io.containerd.stub.v2"
# containerd 2.x creates these whatever its config says (shim socket dir); a run removes the
# ones it caused, when empty, so nothing of ours outlives it outside the run directory
SYSTEM_DIRS = (Path("/run/containerd"), Path("/run/containerd/s"))  # callbacks run LIFO


class Containerd:
    """One containerd process; ``restart`` keeps root and state so it reconnects to shims."""

    def __init__(
        self,
        run: Run,
        *,
        binary: Path | None = None,
        version: str | None = None,
        name: str = "containerd",
        cri_sandbox_image: str | None = None,
    ) -> None:
        """``version`` (e.g. ``"v2.1.5"``) picks a containerd 2.x from the build cache
        (``reconverge build containerd@v2.1.5``); the default is Debian's 1.6.20 on PATH.
        ``cri_sandbox_image`` (2.x only) turns the CRI plugin on, with the stub as the
        default runtime handler and that image as the pod sandbox image."""
        self.run = run
        self.name = name
        self.binary = Path(binary) if binary else binaries.require("containerd", version)
        # a cached build ships its own ctr next to containerd; Debian's is on PATH
        sibling = self.binary.parent / "ctr"
        self.ctr_binary = sibling if version and sibling.exists() else binaries.require("ctr")
        self.dir = run.path(name, mkdir=True)
        self.root = self.dir / "root"
        self.state = self.dir / "state"
        self.address = self.dir / "c.sock"
        self.config = self.dir / "config.toml"
        self.cri = cri_sandbox_image is not None
        template = (FIXTURES / ("config-v3-cri.toml" if self.cri else "config-v2.toml")).read_text()
        cni = self.dir / "cni"  # empty: CRI pods run with host networking
        for d in (cni / "bin", cni / "conf"):
            d.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            template.replace("{root}", str(self.root))
            .replace("{state}", str(self.state))
            .replace("{address}", str(self.address))
            .replace("{cni}", str(cni))
            .replace("{sandbox_image}", cri_sandbox_image or "")
        )
        self.proc: ManagedProcess | None = None

    @property
    def ttrpc_address(self) -> Path:
        return Path(f"{self.address}.ttrpc")

    def bundle(self, namespace: str, container_id: str) -> Path:
        """Where containerd keeps a task's bundle (the shim's cwd)."""
        return self.state / "io.containerd.runtime.v2.task" / namespace / container_id

    def start(self, *, timeout: float = 20.0) -> Containerd:
        _check_socket_room(self.run)
        for d in SYSTEM_DIRS:
            if not d.exists():
                self.run.janitor.callback(f"rmdir {d} if empty", lambda d=d: _rmdir_if_empty(d))
        venv_bin = str(Path(sys.executable).parent)
        env = {"PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        warm = shim_warm.for_run(self.run)  # the stub's warm launcher first on PATH
        if warm is not None:
            env = {**warm.env(), "PATH": f"{warm.bin_dir}:{env['PATH']}"}
        self.proc = ManagedProcess(
            self.run, self.name, [self.binary, "--config", self.config], env=env
        ).start()
        self.proc.wait_ready(
            lambda: unix_open(self.address) and unix_open(self.ttrpc_address),
            timeout=timeout,
            what="gRPC and ttrpc sockets accepting",
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.run.janitor.forget_process(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL containerd alone: its shims survive, as under systemd's KillMode=process."""
        if self.proc is not None:
            self.proc.kill()

    def restart(self, *, kill: bool = False) -> None:
        """Stop (gracefully or with SIGKILL) and start again on the same root and state."""
        if self.proc is None or self.proc.popen is None:
            raise ReconvergeError(f"{self.name} was never started")
        if kill:
            self.kill()
        else:
            self.proc.popen.terminate()  # the leader only: shims keep running
            self.proc.popen.wait(timeout=10)
        journal.emit(self.name, "restarting", kill=kill)
        self.start()

    def tcp_relay(self, which: str = "grpc") -> str:
        """Expose the gRPC (or ttrpc) unix socket on 127.0.0.1 so toxiproxy can sit in front.

        containerd's own ``tcp_address`` serves only CRI, so a relay is the way in; socat
        forks one relay process per connection, which keeps connection resets per-call.
        """
        target = self.address if which == "grpc" else self.ttrpc_address
        port = free_port()
        relay = ManagedProcess(
            self.run,
            f"relay-{self.name}-{which}",
            [
                binaries.require("socat"),
                f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                f"UNIX-CONNECT:{target}",
            ],
        ).start()
        relay.wait_ready(lambda: tcp_open("127.0.0.1", port), timeout=10, what="listening")
        return f"127.0.0.1:{port}"

    def task_status(self, namespace: str, cid: str) -> str:
        """``ctr task ls``'s status for ``cid`` (RUNNING, PAUSED, STOPPED…) or ``ABSENT``."""
        for line in self.ctr(namespace, "task", "ls").splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return parts[-1]
        return "ABSENT"

    def run_stub_task(self, namespace: str, cid: str, *annotations: str) -> None:
        """``ctr run -d --null-io`` of ``cid`` on the stub runtime (an empty rootfs will do:
        the stub runs no image), each ``key=value`` annotation passed with ``--annotation``.

        Why here: every by-hand task (tests, ``reconverge up``'s printed line) starts the same
        way, and the ``--rootfs`` argument order is easy to get wrong (its path comes first).
        """
        rootfs = self.dir / "rootfs"
        rootfs.mkdir(exist_ok=True)
        args = ["run", "-d", "--null-io", "--runtime", STUB_RUNTIME]
        for a in annotations:
            args += ["--annotation", a]
        self.ctr(namespace, *args, "--rootfs", str(rootfs), cid)

    def remove_task(self, namespace: str, cid: str, *, timeout: float = 10.0) -> None:
        """Kill (SIGKILL), wait until STOPPED, delete the task and the container."""
        from harness.wait import wait_for

        self.ctr(namespace, "task", "kill", "-s", "SIGKILL", cid)
        wait_for(
            lambda: self.task_status(namespace, cid),
            timeout=timeout,
            what=f"{cid} stopped",
            accept="STOPPED".__eq__,
        )
        self.ctr(namespace, "task", "delete", cid)
        self.ctr(namespace, "container", "delete", cid)

    def ctr(self, namespace: str, *args: str, timeout: float = 30.0) -> str:
        """Run ``ctr`` against this containerd; one clear error when it fails."""
        cmd = [str(self.ctr_binary), "--address", str(self.address), "-n", namespace, *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        journal.emit("ctr", args[0] if args else "ctr", args=" ".join(args), code=out.returncode)
        if out.returncode != 0:
            raise ReconvergeError(f"ctr {' '.join(args)} failed: {out.stderr.strip()[-300:]}")
        return out.stdout


def _rmdir_if_empty(d: Path) -> None:
    with contextlib.suppress(OSError):
        d.rmdir()


SUN_PATH_MAX = 107  # bytes of a unix socket path, without the terminating NUL
_SHIM_SOCKET_TAIL = len("/shims/") + 16 + len(".fp.sock")  # the longest a shim creates


def _check_socket_room(run: Run) -> None:
    """One clear error instead of shims that die binding their control socket.

    Shim sockets live under the run directory (``shims/<16 hex>.fp.sock``); a long run root
    (``RECONVERGE_RUN_ROOT`` under pytest's tmp_path, say) would push them past the limit.
    """
    longest = len(os.fsencode(str(run.dir))) + _SHIM_SOCKET_TAIL
    if longest > SUN_PATH_MAX:
        raise ReconvergeError(
            f"run directory {run.dir} is too long for the shims' unix sockets "
            f"({longest} > {SUN_PATH_MAX} bytes)",
            fix="set RECONVERGE_RUN_ROOT to a short path (default /tmp/rcv)",
        )
