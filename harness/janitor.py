"""One owner for everything a run starts, and the sweep that cleans up after dead runs.

Why a file-backed registry: clean-up on normal exit, exception, SIGINT and SIGTERM can run
from memory, but a SIGKILLed run leaves nothing behind to run it. So every resource is also
appended to ``<run_dir>/resources.jsonl`` *before* it exists in the world, and the next run
(or ``reconverge janitor --sweep``) replays that file for any run whose owner is gone.

Processes are identified by (pid, start time) so a recycled pid is never killed by
mistake. Processes the harness did not start itself but that descend from what it started
(shim daemons launched by containerd, which re-parent to init) are found by the
``RECONVERGE_RUN_ID`` marker every run puts in its children's environment.

Why undo is *total*: the next run's first act is to sweep the dead ones, so an undo step
that raises would make every later run fail until a person deletes a directory by hand
(it happened: ``rmdir /sys/fs/cgroup/perf_event/rcv-<id>`` on a read-only tmpfs, EROFS).
So every step is isolated: a resource already gone is done; any other failure becomes one
:class:`Failure` naming the resource and the errno, and the remaining steps still run.
Only failures that may succeed later (EBUSY, a docker daemon not answering, a process
that did not die yet) are kept for the next sweep, and only for :data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ENV_RUN_ID = "RECONVERGE_RUN_ID"
MAX_ATTEMPTS = 3  # sweeps that retry one resource before it is reported as given up
CGROUP_FSTYPES = ("cgroup", "cgroup2")
# errors that may go away by themselves: the resource is kept for the next sweep
RETRYABLE_ERRNOS = frozenset(
    {errno.EBUSY, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ENOTEMPTY, errno.ETXTBSY}
)


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
        _reap_children(alive)
        alive = [p for p in alive if proc_start_time(p) is not None and not _is_zombie(p)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0  # SIGKILL is not instant: let the kernel finish it
    while alive and time.monotonic() < deadline:
        _reap_children(alive)
        alive = [p for p in alive if proc_start_time(p) is not None and not _is_zombie(p)]
        if alive:
            time.sleep(0.01)


def _reap_children(pids: list[int]) -> None:
    """Reap those of ``pids`` that are our exited children, and nothing else.

    Why not ``waitpid(-1)``: that would also reap an unrelated child another thread is
    waiting on (``subprocess.run`` then reads ECHILD as exit status 0).
    """
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _unescape(field_: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes come octal-escaped."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field_ = field_.replace(code, char)
    return field_


def mount_table() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees, in mount order."""
    table = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                try:
                    sep = fields.index("-")
                    table.append((_unescape(fields[4]), fields[sep + 1]))
                except (IndexError, ValueError):
                    continue
    except OSError:
        return []
    return table


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first (so they unmount in order)."""
    prefix = str(root).rstrip("/") + "/"
    points = [p for p, _ in mount_table() if p == str(root) or p.startswith(prefix)]
    return sorted(points, key=len, reverse=True)


def cgroup_mounts() -> list[Path]:
    """Mount points of cgroup (v1 controllers) and cgroup2 filesystems, from mountinfo.

    Why not "every directory under /sys/fs/cgroup": on a v1 host that directory is a tmpfs
    (often read-only) holding a directory per *known* controller whether or not it is
    mounted; only a mounted controller can hold a cgroup.
    """
    return [Path(p) for p, fstype in mount_table() if fstype in CGROUP_FSTYPES]


def cgroup_mount_of(path: Path | str) -> Path | None:
    """The cgroup filesystem ``path`` lies strictly inside, or None (not a cgroup path)."""
    p = Path(os.path.normpath(str(path)))
    best: Path | None = None
    for mp in cgroup_mounts():
        if p != mp and p.is_relative_to(mp) and (best is None or len(mp.parts) > len(best.parts)):
            best = mp
    if best is None:
        return None
    # a filesystem mounted inside the cgroup tree (a tmpfs over it) is not a cgroup
    for point, fstype in mount_table():
        mp = Path(point)
        inside = fstype not in CGROUP_FSTYPES and mp != best and mp.is_relative_to(best)
        if inside and p.is_relative_to(mp):
            return None
    return best


def errno_text(exc: BaseException) -> str:
    """``EROFS (Read-only file system)`` for an OSError; the exception type otherwise."""
    if isinstance(exc, OSError) and exc.errno:
        name = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
        return f"{name} ({os.strerror(exc.errno)})"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Resource:
    """One thing to undo; ``kind`` selects how."""

    kind: str
    data: dict

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, **self.data}, separators=(",", ":"))

    def describe(self) -> str:
        """The resource as a report names it (``path /x``, ``process etcd pid 12``)."""
        d = self.data
        if self.kind == "process":
            return f"process {d.get('name')} pid {d.get('pid')}"
        if self.kind == "container":
            return f"container {str(d.get('id'))[:12]}"
        if self.kind in ("path", "cgroup"):
            return f"{self.kind} {d.get('path')}"
        if self.kind == "docker_network":
            return f"docker network {d.get('name')}"
        return f"{self.kind} {d}"


@dataclass
class Failure:
    """One undo step that did not complete: what, why (errno), and whether to retry."""

    what: str
    error: str
    resource: Resource | None = None
    retry: bool = False

    def line(self) -> str:
        """One line for a sweep report."""
        attempts = int(self.resource.data.get("attempts", 0)) if self.resource else 0
        if self.retry:
            tail = f" (kept for the next sweep, attempt {attempts + 1} of {MAX_ATTEMPTS})"
        elif self.resource is not None and attempts + 1 >= MAX_ATTEMPTS:
            tail = f" (given up after {MAX_ATTEMPTS} attempts)"
        else:
            tail = ""
        return f"{self.what}: {self.error}{tail}"


@dataclass
class UndoReport:
    """What an undo did and what it could not do; never raised, always returned."""

    done: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Done steps, then one ``FAILED …`` line per failure."""
        return self.done + [f"FAILED {f.line()}" for f in self.failures]

    def retry(self) -> list[Resource]:
        """Resources worth another attempt, their attempt count raised (oldest first)."""
        out, seen = [], set()
        for f in self.failures:
            if f.retry and f.resource is not None and id(f.resource) not in seen:
                seen.add(id(f.resource))  # one resource may fail in two steps: kept once
                data = dict(f.resource.data)
                data["attempts"] = int(data.get("attempts", 0)) + 1
                out.append(Resource(f.resource.kind, data))
        return list(reversed(out))

    def fail(
        self, what: str, exc: BaseException | str, res: Resource | None, *, retry: bool
    ) -> None:
        """Record one failure (an exception gives its errno); retry is capped by attempts."""
        error = exc if isinstance(exc, str) else errno_text(exc)
        if res is not None and int(res.data.get("attempts", 0)) + 1 >= MAX_ATTEMPTS:
            retry = False
        self.failures.append(Failure(what, error, res, retry and res is not None))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in RETRYABLE_ERRNOS


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
        self.report: UndoReport | None = None

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

    def cgroup(self, path: Path | str) -> None:
        """Own a cgroup directory (removed with rmdir, deepest first, after its processes).

        Refuses (ValueError) a path that is not inside a *mounted* cgroup filesystem: such
        a directory cannot hold a cgroup, and removing it is at best a no-op and at worst
        an EROFS on the read-only tmpfs of /sys/fs/cgroup.
        """
        if cgroup_mount_of(path) is None:
            raise ValueError(f"{path} is not inside a mounted cgroup filesystem")
        self._add("cgroup", path=os.path.normpath(str(path)))

    def container(
        self, container_id: str, *, docker_host: str | None = None, private: bool = False
    ) -> None:
        """Own a Docker container (removed with force).

        ``private``: the container lives on the run's own dockerd, whose cgroups the run
        also owns; when that dockerd no longer answers, the container's processes are swept
        through those cgroups and there is nothing left to retry.
        """
        data: dict[str, object] = {"id": container_id, "docker_host": docker_host}
        if private:
            data["private"] = True
        self._add("container", **data)

    def docker_network(self, name: str, *, bridge: str, docker_host: str | None = None) -> None:
        """Own a Docker network and its bridge interface on the host.

        Why the bridge too: dockerd leaves a network's bridge in place when it stops (or is
        killed); the sweep deletes the interface itself when no dockerd can.
        """
        self._add("docker_network", name=name, bridge=bridge, docker_host=docker_host)

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
        """Undo everything, newest first; returns what it did (for the journal).

        Never raises; the full report (with failures) stays in :attr:`report`.
        """
        with self._lock:
            if self._cleaned:
                return []
            self._cleaned = True
            callbacks = list(reversed(self._callbacks))
            resources = list(reversed(self._resources))
        report = UndoReport()
        for name, fn in callbacks:
            try:
                fn()
                report.done.append(f"callback {name}")
            except Exception as exc:  # keep cleaning: one failure must not leak the rest
                report.fail(f"callback {name}", exc, None, retry=False)
        undo_into(report, resources, self.run_id, self.run_dir)
        self.report = report
        return report.lines()


def undo(resources: list[Resource], run_id: str, run_dir: Path) -> list[str]:
    """Undo recorded resources (newest first) plus marked strays; lines of what happened."""
    return undo_report(resources, run_id, run_dir).lines()


def undo_report(resources: list[Resource], run_id: str, run_dir: Path) -> UndoReport:
    """Undo recorded resources (newest first) plus marked strays; used live and by sweep.

    Never raises: each step's failure is one :class:`Failure` and the next step runs.
    """
    report = UndoReport()
    undo_into(report, resources, run_id, run_dir)
    return report


@contextlib.contextmanager
def _step(report: UndoReport, what: str, res: Resource | None) -> Iterator[None]:
    """Run one undo step; anything it raises is a failure line, not the end of the undo."""
    try:
        yield
    except Exception as exc:
        report.fail(what, exc, res, retry=_retryable(exc))


def undo_into(report: UndoReport, resources: list[Resource], run_id: str, run_dir: Path) -> None:
    """The steps, in order: containers and docker networks, processes, marked strays,
    cgroups, bridges, mounts, paths.

    Containers and networks go first because the dockerd that can remove them is itself
    one of the processes: once it is stopped, ``docker rm -f`` has no one to ask.
    """
    for r in resources:
        if r.kind == "container":
            with _step(report, r.describe(), r):
                _remove_container(report, r)
        elif r.kind == "docker_network":
            with _step(report, r.describe(), r):
                _remove_network(report, r)
    # Stop owned processes newest first: clients before the servers they talk to.
    for r in resources:
        if r.kind == "process":
            with _step(report, r.describe(), r):
                _stop_process(report, r)
    with _step(report, f"stray processes of run {run_id}", None):
        strays = pids_marked(run_id)
        if strays:
            terminate(strays, grace=1.0)
            report.done.append(f"killed {len(strays)} stray process(es) {strays}")
            left = [p for p in strays if proc_start_time(p) is not None and not _is_zombie(p)]
            if left:
                report.fail(f"stray processes of run {run_id}", f"alive: {left}", None, retry=False)
    for r in resources:
        if r.kind == "cgroup":
            with _step(report, r.describe(), r):
                _remove_cgroup(report, r)
    for r in resources:
        if r.kind == "docker_network":
            with _step(report, f"bridge {r.data.get('bridge')}", r):
                _remove_bridge(report, r)
    for point in mounts_under(run_dir):
        with _step(report, f"mount {point}", None):
            _unmount(report, point, None)
    for r in resources:
        if r.kind == "path":
            with _step(report, r.describe(), r):
                _remove_path(report, r)
    known = {"process", "container", "docker_network", "cgroup", "path"}
    for r in resources:
        if r.kind not in known:
            report.fail(r.describe(), "unknown resource kind (left alone)", None, retry=False)


@dataclass
class SweepPlan:
    """What a sweep would do, found by looking only (``reconverge janitor --dry-run``)."""

    dead: dict[str, list[str]] = field(default_factory=dict)  # run id -> "would …" lines
    live: list[str] = field(default_factory=list)  # run ids a sweep leaves alone

    def lines(self) -> list[str]:
        """``would sweep <id>:`` then its indented steps, per dead run."""
        out = []
        for run_id, steps in self.dead.items():
            out.append(f"would sweep {run_id}:")
            out += [f"  {step}" for step in steps]
        return out


def plan_sweep(root: Path, *, owner_alive: Callable[[Path], bool]) -> SweepPlan:
    """The dead runs under ``root`` and what undoing each would touch; changes nothing.

    ``owner_alive`` is the sweep's own test (``run._owner_alive``), passed in so the dry
    run and the sweep cannot disagree about which runs are dead. Never raises: a run that
    cannot be inspected gets one ``cannot inspect`` line.
    """
    report = SweepPlan()
    try:
        run_dirs = sorted(root.iterdir()) if root.is_dir() else []
    except OSError as exc:
        report.dead[str(root)] = [f"cannot list the run root: {errno_text(exc)}"]
        return report
    for run_dir in run_dirs:
        try:
            if not run_dir.is_dir() or run_dir.is_symlink():
                continue
            if owner_alive(run_dir):
                report.live.append(run_dir.name)
                continue
            steps = plan(list(reversed(load_resources(run_dir))), run_dir.name, run_dir)
            steps.append(f"would remove run dir {run_dir} (kept if a step must be retried)")
        except Exception as exc:
            steps = [f"cannot inspect: {errno_text(exc)}"]
        report.dead[run_dir.name] = steps
    return report


def plan(resources: list[Resource], run_id: str, run_dir: Path) -> list[str]:
    """What :func:`undo_into` would act on, in its order, without acting.

    Only looks (``/proc``, mountinfo, ``lexists``): what is already gone is left out,
    because undo counts it done. Containers and docker networks are listed as recorded:
    only their dockerd knows whether they still exist, and a dry run asks nobody.
    """
    out: list[str] = []

    def look(what: str, probe: Callable[[], str | None]) -> None:
        try:
            line = probe()
        except Exception as exc:
            line = f"cannot inspect {what}: {errno_text(exc)}"
        if line:
            out.append(line)

    for r in resources:
        if r.kind in ("container", "docker_network"):
            out.append(f"would remove {r.describe()} (if its dockerd still has it)")
    owned: set[int] = set()
    for r in resources:
        if r.kind == "process":

            def alive(r: Resource = r) -> str | None:
                pid = int(r.data["pid"])
                if not proc_is(pid, r.data.get("start")):
                    return None
                owned.add(pid)
                group = " and its process group" if r.data.get("group") else ""
                return f"would stop {r.describe()}{group}"

            look(r.describe(), alive)

    def strays() -> str | None:
        pids = [p for p in pids_marked(run_id) if p not in owned]
        return f"would kill {len(pids)} stray process(es) {pids}" if pids else None

    look(f"stray processes of run {run_id}", strays)
    for r in resources:
        if r.kind == "cgroup":
            look(r.describe(), lambda r=r: _plan_path(r))
    for r in resources:
        bridge = str(r.data.get("bridge") or "")
        if r.kind == "docker_network" and bridge and Path(f"/sys/class/net/{bridge}").exists():
            out.append(f"would delete bridge {bridge}")
    out += [f"would unmount {point}" for point in mounts_under(run_dir)]
    for r in resources:
        if r.kind == "path":
            look(r.describe(), lambda r=r: _plan_path(r))
    known = {"process", "container", "docker_network", "cgroup", "path"}
    out += [
        f"would leave alone {r.describe()} (unknown kind)" for r in resources if r.kind not in known
    ]
    return out


def _plan_path(r: Resource) -> str | None:
    path = str(r.data.get("path"))
    if not os.path.lexists(path):
        return None
    if r.kind == "cgroup" or cgroup_mount_of(path) is not None:
        return f"would remove cgroup {path} (killing what is inside)"
    return f"would remove {path}"


def _stop_process(report: UndoReport, r: Resource) -> None:
    pid, start = int(r.data["pid"]), r.data.get("start")
    if not proc_is(pid, start):
        return  # gone (or a recycled pid): done
    if r.data.get("group"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    terminate([pid])
    if r.data.get("group"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    if proc_is(pid, start):
        # SIGKILL not taken yet (uninterruptible sleep) or not permitted: retry later
        report.fail(r.describe(), "still alive after SIGKILL", r, retry=True)
        return
    report.done.append(f"stopped {r.data.get('name')} pid {pid}")


def _remove_container(report: UndoReport, r: Resource) -> None:
    cid, docker_host = str(r.data["id"]), r.data.get("docker_host")
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    try:
        out = subprocess.run(
            ["docker", "rm", "-f", cid], capture_output=True, text=True, env=env, timeout=20
        )
    except subprocess.TimeoutExpired:
        report.fail(r.describe(), "docker rm -f timed out after 20 s", r, retry=True)
        return
    except FileNotFoundError:
        report.fail(r.describe(), "docker is not installed", r, retry=True)
        return
    if out.returncode == 0 or "no such container" in out.stderr.lower():
        report.done.append(f"removed container {cid[:12]}")
        return
    why = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
    if r.data.get("private") and "cannot connect to the docker daemon" in why.lower():
        report.done.append(f"container {cid[:12]}: its private dockerd is gone")
        return
    report.fail(r.describe(), f"docker rm -f: {why}", r, retry=True)


def _remove_network(report: UndoReport, r: Resource) -> None:
    """``docker network rm`` while its dockerd answers; the bridge step covers the rest."""
    env = dict(os.environ)
    if r.data.get("docker_host"):
        env["DOCKER_HOST"] = str(r.data["docker_host"])
    try:
        out = subprocess.run(
            ["docker", "network", "rm", str(r.data["name"])],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
        )
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return  # the bridge step deletes the interface without dockerd
    if out.returncode == 0:
        report.done.append(f"removed network {r.data['name']}")


def _remove_bridge(report: UndoReport, r: Resource) -> None:
    bridge = str(r.data.get("bridge") or "")
    if not bridge or not Path(f"/sys/class/net/{bridge}").exists():
        return
    out = subprocess.run(["ip", "link", "delete", bridge], capture_output=True, text=True)
    if out.returncode == 0 or not Path(f"/sys/class/net/{bridge}").exists():
        report.done.append(f"deleted bridge {bridge}")
        return
    report.fail(f"bridge {bridge}", f"ip link delete: {out.stderr.strip()}", r, retry=True)


def _unmount(report: UndoReport, point: str, res: Resource | None) -> None:
    try:
        out = subprocess.run(["umount", "-l", point], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        report.fail(f"mount {point}", "umount -l timed out after 20 s", res, retry=True)
        return
    if out.returncode == 0 or point not in mounts_under(Path(point)):
        report.done.append(f"unmounted {point}")
        return
    why = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
    report.fail(f"mount {point}", f"umount -l: {why}", res, retry=False)


def _remove_path(report: UndoReport, r: Resource) -> None:
    p = Path(r.data["path"])
    if not os.path.lexists(p):
        return  # not found is done (even on a read-only fs, where unlink says EROFS)
    if cgroup_mount_of(p) is not None:
        _remove_cgroup(report, r)  # an old record of a cgroup registered as a path
        return
    for mp in mounts_under(p):
        _unmount(report, mp, r)
    errors: list[tuple[str, BaseException]] = []

    def on_error(fn: object, where: str, exc_info: tuple) -> None:
        exc = exc_info[1]
        if not isinstance(exc, FileNotFoundError):
            errors.append((where, exc))

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, onerror=on_error)
    else:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append((str(p), exc))
    if not errors:
        report.done.append(f"removed {p}")
        return
    where, exc = errors[0]
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    at = "" if where == str(p) else f" at {where}"
    retry = all(_retryable(e) for _, e in errors)
    report.fail(r.describe(), f"{errno_text(exc)}{at}{more}", r, retry=retry)


def _cgroup_pids(directory: Path) -> list[int]:
    """Every pid in ``directory`` and the cgroups below it."""
    pids: list[int] = []
    for sub, _dirs, _files in os.walk(directory):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(x) for x in Path(sub, "cgroup.procs").read_text().split()]
    return pids


def _remove_cgroup(report: UndoReport, r: Resource) -> None:
    """Kill what is left inside (thawed first), then rmdir the tree deepest first.

    A cgroup's files cannot be unlinked: rmdir of an empty cgroup is the only removal.
    """
    p = Path(os.path.normpath(str(r.data["path"])))
    if not os.path.lexists(p):
        return
    if cgroup_mount_of(p) is None:
        report.fail(
            r.describe(), "not inside a mounted cgroup filesystem (left alone)", None, retry=False
        )
        return
    with contextlib.suppress(OSError):
        for sub, _dirs, files in os.walk(p):
            if "freezer.state" in files:
                Path(sub, "freezer.state").write_text("THAWED")
    me = os.getpid()
    pids = [pid for pid in _cgroup_pids(p) if pid != me]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 3.0
    while pids and time.monotonic() < deadline:
        _reap_children(pids)
        pids = [pid for pid in _cgroup_pids(p) if pid != me]
        if pids:
            time.sleep(0.02)
    errors: list[tuple[str, OSError]] = []
    for sub, _dirs, _files in os.walk(p, topdown=False):
        try:
            os.rmdir(sub)
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append((sub, exc))
    if not errors:
        report.done.append(f"removed cgroup {p}")
        return
    where, exc = errors[0]
    holders = _cgroup_pids(p)
    held = f"; still holds pid(s) {holders}" + (" (this process)" if me in holders else "")
    at = "" if where == str(p) else f" at {where}"
    report.fail(
        r.describe(),
        f"{errno_text(exc)}{at}{held if holders else ''}",
        r,
        retry=all(_retryable(e) for _, e in errors),
    )


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
        if not isinstance(d, dict):
            continue
        kind = d.pop("kind", None)
        if kind:
            out.append(Resource(kind, d))
    return out


def save_resources(run_dir: Path, resources: list[Resource]) -> None:
    """Replace a run's resource file with ``resources`` (what a sweep will retry)."""
    tmp = run_dir / "resources.jsonl.tmp"
    tmp.write_text("".join(r.to_json() + "\n" for r in resources))
    os.replace(tmp, run_dir / "resources.jsonl")
