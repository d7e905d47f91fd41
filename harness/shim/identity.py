"""Who is a stub shim daemon, which run owns it, which container it serves — without argv.

Why a deliberate identity: the leak detector, the janitor's stray scan and the tests used
to recognise a daemon by ``harness.shim.daemon`` in its cmdline. A daemon forked from a
warm parent (the fork server, :mod:`harness.shim.forkserver`) carries that parent's
cmdline and environ, so argv says nothing. What a forked daemon can still set for itself,
and what it inherits correctly, is:

- its **process name** (``prctl(PR_SET_NAME)``, read back as ``/proc/<pid>/comm``):
  :data:`NAME` for a daemon, :data:`FORK_NAME` for a fork server;
- ``RECONVERGE_RUN_ID`` in its environment (from containerd or from the fork server):
  which run started it (:func:`run_of`);
- its **registry entry** ``<run>/shims/<key>.json`` (pid, pid start time, namespace, id):
  which container it serves (:func:`registry_of`); its working directory is the bundle
  (``…/<namespace>/<id>``), which names the container when the entry is missing.

A daemon inside a kind node is in the host's /proc as well (the node is a child pid
namespace); :func:`container_of` names the node container from its cgroup.

A task process the stub spawns is marked too (:data:`ENV_TASK`, :data:`ENV_SHIM_PID` in its
environment), so a task whose shim died (a ``panic``) is found by :func:`orphaned_tasks`.

Standard library only, and cheap: ``main`` (start/delete, inside containerd's deadlines)
and the daemon import it before anything else.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms in delete)
if TYPE_CHECKING:
    from pathlib import Path

#: ``/proc/<pid>/comm`` of a stub daemon (at most 15 bytes: the kernel's TASK_COMM_LEN - 1).
NAME = "rcv-shim"
#: ``/proc/<pid>/comm`` of the fork server that forks daemons (:mod:`harness.shim.forkserver`).
FORK_NAME = "rcv-shim-fork"
#: cmdline of daemons started by an older stub that did not set its name (fallback only).
LEGACY_CMDLINE = b"harness.shim.daemon"

ENV_RUN_ID = "RECONVERGE_RUN_ID"
#: In a task process's environment: ``<namespace>/<container id>`` it runs for.
ENV_TASK = "RECONVERGE_SHIM_TASK"
#: In a task process's environment: ``<pid>:<start ticks>`` of the daemon that spawned it.
ENV_SHIM_PID = "RECONVERGE_SHIM_PID"

PR_SET_NAME = 15
TASK_STATE = "io.containerd.runtime.v2.task"


def set_name(name: str = NAME) -> bool:
    """Name the calling process (its main thread) ``name``; False when prctl is refused.

    Call it first thing in a daemon (and after ``fork`` in a forked one): until then the
    process is recognised only by the legacy cmdline fallback.
    """
    import ctypes  # lazily: ``delete`` imports this module and never names itself

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def comm(pid: int) -> str:
    """The process name of ``pid`` ("" when gone)."""
    return _read(f"/proc/{pid}/comm").decode(errors="replace").rstrip("\n")


def _stat_fields(pid: int) -> list[bytes]:
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return []
    # comm may hold spaces and parens: fields start after the last ')'
    return data[data.rindex(b")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None when gone): pid-reuse guard."""
    rest = _stat_fields(pid)
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def ppid(pid: int) -> int | None:
    """Parent pid of ``pid`` (None when gone)."""
    rest = _stat_fields(pid)
    try:
        return int(rest[1])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie's comm and environ are gone or meaningless)."""
    rest = _stat_fields(pid)
    return bool(rest) and rest[0] not in (b"Z", b"X")


def is_stub(pid: int) -> bool:
    """True when ``pid`` is a live stub daemon: named :data:`NAME`, or (a daemon of an older
    stub, or one that has not named itself yet) ``harness.shim.daemon`` in its cmdline."""
    if pid <= 0 or not _alive(pid):
        return False
    if comm(pid) == NAME:
        return True
    return LEGACY_CMDLINE in _read(f"/proc/{pid}/cmdline")


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` started with ({} when gone or unreadable)."""
    out = {}
    for item in _read(f"/proc/{pid}/environ").split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def run_of(pid: int) -> str | None:
    """The ``RECONVERGE_RUN_ID`` ``pid`` carries (None when it carries none)."""
    marker = ENV_RUN_ID.encode() + b"="
    for item in _read(f"/proc/{pid}/environ").split(b"\0"):
        if item.startswith(marker):
            return item[len(marker) :].decode(errors="replace")
    return None


def _pids() -> list[int]:
    try:
        return [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []


def stub_pids(run_id: str | None = None) -> list[int]:
    """Every live stub daemon (of run ``run_id`` only, when given), by /proc scan."""
    me = os.getpid()
    out = []
    for pid in _pids():
        if pid == me or not is_stub(pid):
            continue
        if run_id is None or run_of(pid) == run_id:
            out.append(pid)
    return out


def bundle_of(pid: int) -> tuple[str, str] | None:
    """(namespace, id) from the daemon's working directory (containerd starts shims in the
    bundle ``…/io.containerd.runtime.v2.task/<ns>/<id>``); None when it is not a bundle."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    cwd = cwd.removesuffix(" (deleted)")
    parts = cwd.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] == TASK_STATE:
        return parts[-2], parts[-1]
    return None


def container_in_cgroup(text: str) -> str | None:
    """The container id (64 hex) a ``/proc/<pid>/cgroup`` text names, or None.

    Docker puts a container's processes under ``…/docker/<id>`` (cgroupfs driver) or
    ``…/docker-<id>.scope`` (systemd driver), v1 or v2; a kind node is such a container, so
    this names the node a stub daemon runs in when seen from the host's /proc.
    """
    for line in text.splitlines():
        for part in line.rsplit(":", 1)[-1].split("/"):
            name = part.removeprefix("docker-").removesuffix(".scope")
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                return name
    return None


def container_of(pid: int) -> str | None:
    """The container (e.g. a kind node) ``pid`` runs in, from its cgroup; None on the host."""
    return container_in_cgroup(_read(f"/proc/{pid}/cgroup").decode(errors="replace"))


def registry_entries(shims_dir: Path) -> list[dict]:
    """Every registry entry in ``shims_dir`` (``<run>/shims``), with its file as ``registry``."""
    import json

    out = []
    try:
        files = sorted(shims_dir.glob("*.json"))
    except OSError:
        return out
    for f in files:
        try:
            out.append(json.loads(f.read_text()) | {"registry": str(f)})
        except (OSError, ValueError):
            continue
    return out


def entry_is(entry: dict, pid: int) -> bool:
    """The entry describes the process ``pid`` is now (same pid, and same start time when
    the entry recorded one: a recycled pid is not the daemon)."""
    if int(entry.get("pid") or 0) != pid:
        return False
    ticks = entry.get("pid_start")
    return ticks is None or start_ticks(pid) == int(ticks)


def registry_of(pid: int, run_dir: Path) -> tuple[str, str] | None:
    """(namespace, id) the registry of run ``run_dir`` says daemon ``pid`` serves."""
    for entry in registry_entries(run_dir / "shims"):
        if entry_is(entry, pid):
            return str(entry.get("namespace", "")), str(entry.get("id", ""))
    return None


def task_marker(namespace: str, container_id: str) -> dict[str, str]:
    """Environment a daemon adds to each task process it spawns (see :func:`orphaned_tasks`)."""
    me = os.getpid()
    return {ENV_TASK: f"{namespace}/{container_id}", ENV_SHIM_PID: f"{me}:{start_ticks(me) or 0}"}


class TaskProc:
    """A process a stub daemon spawned for a task (or a descendant of one).

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, several ms that
    ``delete`` would pay inside containerd's deadline.
    """

    __slots__ = ("container_id", "namespace", "pid", "shim_pid", "shim_start")

    def __init__(
        self, pid: int, namespace: str, container_id: str, shim_pid: int, shim_start: int
    ) -> None:
        self.pid = pid
        self.namespace = namespace
        self.container_id = container_id
        self.shim_pid = shim_pid
        self.shim_start = shim_start

    def __repr__(self) -> str:
        return (
            f"TaskProc(pid={self.pid}, {self.namespace}/{self.container_id}, "
            f"shim={self.shim_pid}:{self.shim_start})"
        )

    def shim_alive(self) -> bool:
        """The very daemon that spawned it is still alive (not a recycled pid)."""
        return is_stub(self.shim_pid) and start_ticks(self.shim_pid) == self.shim_start


def task_procs(run_id: str | None = None) -> list[TaskProc]:
    """Live processes carrying the task marker (of run ``run_id`` only, when given)."""
    task_key = ENV_TASK.encode() + b"="
    out = []
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        raw = _read(f"/proc/{pid}/environ")
        if task_key not in raw or not _alive(pid):
            continue
        env = environ(pid)
        if run_id is not None and env.get(ENV_RUN_ID) != run_id:
            continue
        ns, _, cid = env.get(ENV_TASK, "").partition("/")
        shim, _, ticks = env.get(ENV_SHIM_PID, "").partition(":")
        try:
            out.append(TaskProc(pid, ns, cid, int(shim or 0), int(ticks or 0)))
        except ValueError:
            continue
    return out


def orphaned_tasks(run_id: str | None = None) -> list[TaskProc]:
    """Task processes whose daemon is gone (a ``panic``, a SIGKILL): nobody will reap them."""
    return [t for t in task_procs(run_id) if not t.shim_alive()]
