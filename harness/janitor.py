"""One owner for everything a run starts, and the sweep that cleans up after dead runs.

Why a file-backed registry: clean-up on normal exit, exception, SIGINT and SIGTERM can run
from memory, but a SIGKILLed run leaves nothing behind to run it. So every resource is also
appended to ``<run_dir>/resources.jsonl`` *before* it exists in the world, and the next run
(or ``reconverge janitor --sweep``) replays that file for any run whose owner is gone.

Processes are identified by (pid, start time) so a recycled pid is never killed by
mistake. Processes the harness did not start itself but that descend from what it started
(shim daemons launched by containerd, which re-parent to init) are found by the
``RECONVERGE_RUN_ID`` marker every run puts in its children's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENV_RUN_ID = "RECONVERGE_RUN_ID"


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parens: split after the last ')'
    rest = data[data.rindex(b")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def proc_is(pid: int, start_time: int | None) -> bool:
    """True when ``pid`` is alive and is the very process that had ``start_time``."""
    now = proc_start_time(pid)
    if now is None:
        return False
    if _is_zombie(pid):
        return False
    return start_time is None or now == start_time


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] == b"Z"
    except (OSError, ValueError):
        return True


def pids_marked(run_id: str) -> list[int]:
    """Live processes whose environment carries ``RECONVERGE_RUN_ID=<run_id>``."""
    marker = f"{ENV_RUN_ID}={run_id}".encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if marker in env.split(b"\0") and not _is_zombie(pid):
            found.append(pid)
    return found


def terminate(pids: list[int], *, grace: float = 3.0) -> None:
    """SIGTERM, wait up to ``grace`` for exit, then SIGKILL the rest."""
    alive = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        _reap_children()
        alive = [p for p in alive if proc_start_time(p) is not None and not _is_zombie(p)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap_children()


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first (so they unmount in order)."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == str(root) or point.startswith(prefix):
                    points.append(point)
    except OSError:
        return []
    return sorted(points, key=len, reverse=True)


@dataclass
class Resource:
    """One thing to undo; ``kind`` selects how."""

    kind: str
    data: dict

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, **self.data}, separators=(",", ":"))


class Janitor:
    """Registers resources for one run and undoes them, newest first."""

    def __init__(self, run_id: str, run_dir: Path) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self._file = run_dir / "resources.jsonl"
        self._lock = threading.RLock()
        self._resources: list[Resource] = []
        self._callbacks: list[tuple[str, Callable[[], None]]] = []
        self._cleaned = False

    # -- registration ---------------------------------------------------------------
    def _add(self, kind: str, **data: object) -> Resource:
        res = Resource(kind, dict(data))
        with self._lock:
            self._resources.append(res)
            with open(self._file, "a") as f:
                f.write(res.to_json() + "\n")
        return res

    def process(self, pid: int, *, name: str, group: bool = True) -> None:
        """Own a started process (and, with ``group``, its whole process group)."""
        self._add("process", pid=pid, start=proc_start_time(pid), name=name, group=group)

    def path(self, path: Path | str) -> None:
        """Own a file, socket or directory that must not outlive the run."""
        self._add("path", path=str(path))

    def container(self, container_id: str, *, docker_host: str | None = None) -> None:
        """Own a Docker container (removed with force)."""
        self._add("container", id=container_id, docker_host=docker_host)

    def callback(self, name: str, fn: Callable[[], None]) -> None:
        """In-memory clean-up (e.g. delete a proxy through an API).

        Only for things that also die with a registered process, because a SIGKILLed
        run cannot replay a callback.
        """
        with self._lock:
            self._callbacks.append((name, fn))

    def forget_process(self, pid: int) -> None:
        """Stop owning a process that was stopped on purpose (e.g. a restart)."""
        with self._lock:
            self._resources = [
                r for r in self._resources if not (r.kind == "process" and r.data["pid"] == pid)
            ]

    # -- clean-up -------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Undo everything, newest first; returns what it did (for the journal)."""
        with self._lock:
            if self._cleaned:
                return []
            self._cleaned = True
            callbacks = list(reversed(self._callbacks))
            resources = list(reversed(self._resources))
        done: list[str] = []
        for name, fn in callbacks:
            try:
                fn()
                done.append(f"callback {name}")
            except Exception as exc:  # keep cleaning: one failure must not leak the rest
                done.append(f"callback {name} failed: {exc}")
        done += undo(resources, self.run_id, self.run_dir)
        return done


def undo(resources: list[Resource], run_id: str, run_dir: Path) -> list[str]:
    """Undo recorded resources (newest first) plus marked strays; used live and by sweep."""
    done: list[str] = []
    procs = [r for r in resources if r.kind == "process"]
    # Stop owned processes newest first: clients before the servers they talk to.
    for r in procs:
        pid, start = int(r.data["pid"]), r.data.get("start")
        if not proc_is(pid, start):
            continue
        targets = [pid]
        if r.data.get("group"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        terminate(targets)
        if r.data.get("group"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        done.append(f"stopped {r.data.get('name')} pid {pid}")
    strays = pids_marked(run_id)
    if strays:
        terminate(strays, grace=1.0)
        done.append(f"killed {len(strays)} stray process(es) {strays}")
    for r in resources:
        if r.kind == "container":
            done.append(_remove_container(r.data["id"], r.data.get("docker_host")))
    for point in mounts_under(run_dir):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        done.append(f"unmounted {point}")
    for r in resources:
        if r.kind == "path":
            p = Path(r.data["path"])
            for mp in mounts_under(p):
                subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    p.unlink()
            done.append(f"removed {p}")
    return done


def _remove_container(cid: str, docker_host: str | None) -> str:
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    try:
        subprocess.run(
            ["docker", "rm", "-f", cid], capture_output=True, env=env, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"container {cid[:12]}: {exc}"
    return f"removed container {cid[:12]}"


def load_resources(run_dir: Path) -> list[Resource]:
    """Read a run's resource file (a torn last line is skipped)."""
    out = []
    try:
        lines = (run_dir / "resources.jsonl").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        kind = d.pop("kind", None)
        if kind:
            out.append(Resource(kind, d))
    return out
