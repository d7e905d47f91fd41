"""Leak detector for shims: what outlived the task that needed it, and who created it.

A shim is leaked when its process is alive (or its files remain) although containerd no
longer knows its task — containerd-shim-protocol.md §5.4 lists how upstream tests look;
this module does the same from the stub's registry files and ``/proc``, plus a live ttrpc
``Connect`` on the shim's socket (a dead shim answers ``ttrpc: closed`` or refuses).

Besides the shim's own traces it asks containerd (gRPC ``Tasks.List``: tasks it still
lists), counts the FIFO fds containerd holds against a baseline taken before the test, and
scans ``/proc`` (:mod:`harness.shim.identity`, never a cmdline pattern) for stub daemons of
this run that have no registry entry and for task processes whose daemon is gone (the
orphans of a ``panic``). Every finding names the container id and the test: the caller
passes the test, or it is looked up from the namespace's owner recorded with
:func:`claim_namespace`.

A question the detector cannot answer — containerd unreachable, a shim alive that does not
answer ``Connect`` in time — raises :class:`harness.verdict.Unobservable` with a one-line
reason: "could not ask" must read neither as "clean" nor as "leaked". Every blocking probe
is capped by the caller's remaining budget (:func:`wait_until_clean`), so the detector
never blocks much past it.

Everything here is synchronous (fixtures and checkers call it between steps); the gRPC and
ttrpc probes run their own event loop, in a worker thread when the caller's loop is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import TooSlow
from harness.shim import identity
from harness.shim.paths import shims_dir
from harness.verdict import Unobservable
from harness.wait import wait_for

T = TypeVar("T")


#: Every kind of finding, in the order a report lists them.
KINDS = (
    "shim-process",  # a registered daemon alive for a container containerd forgot
    "shim-unregistered",  # a stub daemon of this run with no registry entry (/proc scan)
    "task-orphan",  # a task process whose daemon is gone (/proc scan)
    "shim-socket",  # the daemon is gone, its socket file stayed
    "bundle",  # the task's bundle dir stayed
    "containerd-task",  # containerd still lists the task
    "fifo",  # containerd holds FIFO fds beyond the test's baseline
)

#: The shortest time any blocking probe is given, even when the budget is spent: the last
#: probe must be able to answer, and a probe may overrun the budget by at most about this.
MIN_PROBE_S = 0.5
#: Caps of a single blocking call when the caller gives no budget.
CONNECT_TIMEOUT_S = 1.0
GRPC_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Finding:
    """One leaked thing, attributed to the container id (and test) that created it.

    ``latency`` (seconds, set by :func:`wait_until_clean`): from the container's removal —
    or, when that is unknown, from the start of the check (``latency_from`` says which) —
    to the first probe that reported the leak. Not part of equality: the same leak seen
    twice is one leak.
    """

    kind: str  # one of KINDS
    container_id: str
    namespace: str
    pid: int
    path: str
    evidence: str
    test: str = ""
    latency: float | None = field(default=None, compare=False)
    latency_from: str = field(default="", compare=False)

    def __str__(self) -> str:
        who = f"{self.namespace}/{self.container_id}"
        pid = f" pid {self.pid}" if self.pid and self.kind != "fifo" else ""
        seen = ""
        if self.latency is not None:
            seen = f"; detected {self.latency * 1000:.0f} ms after {self.latency_from}"
        return (
            f"{self.kind} of {who}{pid} (test {self.test or '?'}): {self.evidence}{seen} "
            f"[{self.path}]"
        )


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop.

    ``asyncio.run`` refuses to nest; an async test calling the detector would otherwise
    get an error where it expects findings, so then the coroutine runs on a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    t = threading.Thread(target=worker, name="leaks-probe", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def shim_alive(pid: int) -> bool:
    """True when ``pid`` is a live stub-shim daemon (by its identity, not its argv)."""
    return identity.is_stub(pid)


def connect_probe(socket_path: str, container_id: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Does the shim on ``socket_path`` serve? A ttrpc ``Connect`` within ``timeout``.

    True: it answered (even with an error status: something serves). False: refused, no
    socket, or the connection closed — nothing serves. No answer within ``timeout`` is
    neither: :class:`Unobservable`.
    """
    from harness.protos import shim_task_pb2
    from harness.ttrpc import Client, Closed, Code, TTRPCError

    async def probe() -> bool:
        t0 = time.monotonic()
        try:
            client = await Client.connect(f"unix://{socket_path}", timeout=timeout)
        except TimeoutError:
            raise Unobservable(
                f"shim socket {socket_path} accepted no connection within {timeout:.2f}s"
            ) from None
        except OSError:
            return False
        try:
            req = shim_task_pb2.ConnectRequest(id=container_id).SerializeToString()
            left = max(timeout - (time.monotonic() - t0), 0.05)
            await client.call("containerd.task.v2.Task", "Connect", req, timeout=left)
            return True
        except Closed:
            return False
        except TTRPCError as exc:
            if exc.code == Code.DEADLINE_EXCEEDED:
                raise Unobservable(
                    f"shim for {container_id} alive but did not answer Connect within "
                    f"{timeout:.2f}s"
                ) from None
            return True
        finally:
            await client.close()

    return run_sync(probe)


def connect_answers(socket_path: str, container_id: str, timeout: float = 0.5) -> bool:
    """A ttrpc ``Connect`` on the shim's socket succeeds (False also when it did not answer
    in time; :func:`connect_probe` tells those apart)."""
    try:
        return connect_probe(socket_path, container_id, timeout)
    except Unobservable:
        return False


def registry(run_dir: Path | None = None) -> list[dict]:
    """Every shim registry entry (written by live daemons, left behind by leaked ones)."""
    return identity.registry_entries((run_dir / "shims") if run_dir else shims_dir())


def run_id_of(run_dir: Path) -> str:
    """The run id of ``run_dir`` (its ``run.json``, else the directory's name)."""
    import json

    try:
        return str(json.loads((run_dir / "run.json").read_text())["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir.name


def containerd_tasks(
    address: Path, namespace: str, timeout: float = GRPC_TIMEOUT_S
) -> dict[str, str]:
    """Tasks containerd lists for ``namespace`` (its gRPC socket, no proxy).

    Raises:
        Unobservable: containerd did not answer within ``timeout`` (unreachable, killed).
    """
    tasks = _tasks_by_namespace(address, namespace, timeout)
    return {cid: status for (_, cid), status in tasks}


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0][:160]


def _tasks_by_namespace(
    address: Path, namespace: str | None, timeout: float = GRPC_TIMEOUT_S
) -> list[tuple[tuple[str, str], str]]:
    """((namespace, id), status) of every task containerd lists, in one or all namespaces.

    Any gRPC error — UNAVAILABLE (containerd killed) included — raises
    :class:`Unobservable`: "could not ask" must not read as "nothing leaked".
    """
    import grpc

    from harness.protos import namespaces_pb2
    from harness.providers.containerd_client import ContainerdClient

    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(deadline - time.monotonic(), 0.05)

    async def ask() -> list[tuple[tuple[str, str], str]]:
        c = ContainerdClient(str(address), namespace or "default")
        try:
            if namespace is None:
                resp = await c.namespaces.List(
                    namespaces_pb2.ListNamespacesRequest(), timeout=left()
                )
                names = [n.name for n in resp.namespaces]
            else:
                names = [namespace]
            out = []
            for ns in names:
                c.namespace = ns
                out += [((ns, cid), st) for cid, st in (await c.list_tasks(timeout=left())).items()]
            return out
        except grpc.aio.AioRpcError as exc:
            raise Unobservable(
                f"containerd at {address} did not answer Tasks.List (cap {timeout:.2f}s): "
                f"{exc.code().name} {_first_line(exc.details())}"
            ) from exc
        finally:
            await c.close()

    return run_sync(ask)


FIFO_SUFFIXES = ("-stdin", "-stdout", "-stderr")


def fifos_held(pid: int) -> dict[str, list[str]]:
    """Container id -> the stdio FIFOs process ``pid`` (containerd) holds open for it."""
    out: dict[str, list[str]] = {}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        name = target.rsplit("/", 1)[-1]
        for suffix in FIFO_SUFFIXES:
            if name.endswith(suffix):
                out.setdefault(name.removesuffix(suffix), []).append(target)
    return out


def fifo_fds(pid: int) -> list[str]:
    """Paths of the named FIFOs process ``pid`` holds open (one entry per fd).

    Anonymous pipes (``pipe:[…]``) are not counted: containerd uses those for its own
    plumbing; a named FIFO is a container's stdio (ctr's fifo dir, CRI's ``io`` dirs).
    """
    out: list[str] = []
    try:
        fds = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(fd.path)
            if target.startswith("/") and stat.S_ISFIFO(os.stat(fd.path).st_mode):
                out.append(target)
        except OSError:
            continue
    return out


TASK_STATE = "io.containerd.runtime.v2.task"


def owner_of_fifo(path: str) -> tuple[str | None, str]:
    """(namespace or None, container id) a FIFO belongs to, from its path.

    containerd 1.6 holds each live shim's ``<state>/io.containerd.runtime.v2.task/<ns>/<id>/log``
    FIFO (it copies the shim's log); stdio FIFOs (ctr's fifo dir, CRI's ``io`` dirs) are
    named ``<id>-stdout`` and so on. Anything else is reported under its file name.
    """
    parts = path.split("/")
    if len(parts) >= 4 and parts[-4] == TASK_STATE:
        return parts[-3], parts[-2]
    name = parts[-1]
    for suffix in FIFO_SUFFIXES:
        if name.endswith(suffix):
            return None, name.removesuffix(suffix)
    return None, name


OWNERS_DIR = "namespaces"


def claim_namespace(run_dir: Path, namespace: str, test: str) -> None:
    """Record that ``test`` owns ``namespace``, so a finding there names it later.

    A file per namespace (not the journal): the lookup happens inside a 1 s budget.
    """
    d = run_dir / OWNERS_DIR
    d.mkdir(exist_ok=True, mode=0o700)
    (d / namespace).write_text(test)


def owner_of(run_dir: Path, namespace: str) -> str:
    """The test that claimed ``namespace`` ("" when none did)."""
    try:
        return (run_dir / OWNERS_DIR / namespace).read_text()
    except (OSError, ValueError):
        return ""


def registry_entry(run_dir: Path, namespace: str, container_id: str) -> dict:
    """The registry entry of the shim for ``namespace/container_id`` ({} when none)."""
    for e in registry(run_dir):
        if e.get("namespace") == namespace and e.get("id") == container_id:
            return e
    return {}


def find_leaks(
    run_dir: Path,
    *,
    state_dir: Path | None = None,
    namespace: str | None = None,
    known_tasks: Collection[str] = frozenset(),
    test: str = "",
    containerd_address: Path | None = None,
    containerd_pid: int | None = None,
    fifo_baseline: Collection[str] | None = None,
    run_id: str | None = None,
    proc_scan: bool = True,
    timeout: float | None = None,
) -> list[Finding]:
    """What outlived its containers: shims, sockets, bundles, containerd tasks, FIFOs.

    ``known_tasks`` are containers the caller still expects to exist. With
    ``containerd_address``, tasks containerd still lists (in ``namespace``, or in every
    namespace) are findings. With ``containerd_pid`` and ``fifo_baseline`` (``fifo_fds``
    of containerd before the test), every FIFO fd containerd holds beyond the baseline is;
    with ``containerd_pid`` alone, stdio FIFOs of containers whose shim ran in the
    namespace are. ``proc_scan`` (on by default) adds stub daemons of run ``run_id``
    (default: ``run_dir``'s) without a registry entry and task processes whose daemon is
    gone. ``test`` names the test in every finding; without it the namespace's claimed
    owner is used. ``timeout`` caps this whole probe (each blocking call gets what is left,
    at least :data:`MIN_PROBE_S`).

    Raises:
        Unobservable: containerd or a live shim did not answer within the cap.
    """
    findings = _find(
        run_dir,
        state_dir=state_dir,
        namespace=namespace,
        known_tasks=known_tasks,
        test=test,
        containerd_address=containerd_address,
        containerd_pid=containerd_pid,
        fifo_baseline=fifo_baseline,
        run_id=run_id,
        proc_scan=proc_scan,
        deadline=None if timeout is None else time.monotonic() + max(timeout, MIN_PROBE_S),
    )
    if test or not findings:
        return findings
    owners: dict[str, str] = {}
    out = []
    for f in findings:
        if f.namespace not in owners:
            owners[f.namespace] = owner_of(run_dir, f.namespace) if f.namespace else ""
        out.append(replace(f, test=owners[f.namespace]))
    return out


def _cap(deadline: float | None, default: float) -> float:
    """A blocking call's timeout: what is left of the probe's cap (never below 0.1 s)."""
    if deadline is None:
        return default
    return min(default, max(deadline - time.monotonic(), 0.1))


def _find(
    run_dir: Path,
    *,
    state_dir: Path | None,
    namespace: str | None,
    known_tasks: Collection[str],
    test: str,
    containerd_address: Path | None,
    containerd_pid: int | None,
    fifo_baseline: Collection[str] | None,
    run_id: str | None,
    proc_scan: bool,
    deadline: float | None,
) -> list[Finding]:
    findings: list[Finding] = []
    entries = registry(run_dir)
    ours: set[str] = set()  # container ids whose shims ran in this namespace
    for entry in entries:
        if namespace is None or entry.get("namespace") == namespace:
            ours.add(str(entry.get("id", "")))
    for entry in entries:
        ns, cid = entry.get("namespace", ""), entry.get("id", "")
        if namespace is not None and ns != namespace:
            continue
        if cid in known_tasks:
            continue
        pid = int(entry.get("pid") or 0)
        if pid and shim_alive(pid) and identity.entry_is(entry, pid):
            sock = entry.get("socket", "")
            try:
                answers = connect_probe(sock, cid, _cap(deadline, CONNECT_TIMEOUT_S))
            except Unobservable as exc:
                raise Unobservable(
                    f"shim pid {pid} of {ns}/{cid} (test {test or '?'}): {exc}"
                ) from None
            findings.append(
                Finding(
                    "shim-process",
                    cid,
                    ns,
                    pid,
                    sock,
                    "daemon alive" + (", answers Connect" if answers else ", does not serve"),
                    test,
                )
            )
        elif Path(entry.get("socket", "")).exists():
            findings.append(
                Finding(
                    "shim-socket", cid, ns, pid, entry["socket"], "socket file left behind", test
                )
            )
    if proc_scan:
        findings += _scan_proc(
            run_id or run_id_of(run_dir), entries, namespace, known_tasks, test, run_dir
        )
    if state_dir is not None:
        base = state_dir / "io.containerd.runtime.v2.task"
        for bundle in sorted(base.glob("*/*")) if base.is_dir() else []:
            ns, cid = bundle.parent.name, bundle.name
            if cid.startswith(".") or (namespace is not None and ns != namespace):
                continue
            if cid not in known_tasks:
                findings.append(
                    Finding("bundle", cid, ns, 0, str(bundle), "bundle dir without a task", test)
                )
    if containerd_address is not None:
        listed = _tasks_by_namespace(containerd_address, namespace, _cap(deadline, GRPC_TIMEOUT_S))
        for (ns, cid), status in listed:
            if cid not in known_tasks:
                findings.append(
                    Finding(
                        "containerd-task",
                        cid,
                        ns,
                        0,
                        str(containerd_address),
                        f"containerd still lists the task ({status})",
                        test,
                    )
                )
    if containerd_pid and fifo_baseline is not None:
        now = fifo_fds(containerd_pid)
        excess = Counter(now) - Counter(fifo_baseline)
        by_owner: dict[tuple[str, str], list[str]] = {}
        for path, n in sorted(excess.items()):
            ns, cid = owner_of_fifo(path)
            by_owner.setdefault((ns or namespace or "", cid), []).extend([path] * n)
        for (ns, cid), paths in by_owner.items():
            if cid in known_tasks:
                continue
            findings.append(
                Finding(
                    "fifo",
                    cid,
                    ns,
                    containerd_pid,
                    paths[0],
                    f"containerd holds {len(paths)} FIFO fd(s) more than before the test "
                    f"({len(now)} now, {len(fifo_baseline)} before)",
                    test,
                )
            )
    elif containerd_pid:
        for cid, paths in sorted(fifos_held(containerd_pid).items()):
            if cid in ours and cid not in known_tasks:
                findings.append(
                    Finding(
                        "fifo",
                        cid,
                        namespace or "",
                        containerd_pid,
                        paths[0],
                        f"containerd holds {len(paths)} stdio FIFO fd(s)",
                        test,
                    )
                )
    return findings


def _scan_proc(
    run_id: str,
    entries: list[dict],
    namespace: str | None,
    known_tasks: Collection[str],
    test: str,
    run_dir: Path,
) -> list[Finding]:
    """Stub daemons of ``run_id`` without a registry entry; task processes whose daemon died.

    An unregistered daemon is attributed by its working directory (the bundle containerd
    started it in); one that cannot be attributed is reported only when no namespace
    filter is set. A daemon starting up (before its entry is written) or exiting (after it
    removed its entry) is unregistered for a moment: :func:`wait_until_clean`'s re-probing
    is what keeps that from being a finding.
    """
    out: list[Finding] = []
    for pid in identity.stub_pids(run_id):
        if any(identity.entry_is(e, pid) for e in entries):
            continue
        ns, cid = identity.bundle_of(pid) or ("", "")
        if (namespace is not None and ns != namespace) or (cid and cid in known_tasks):
            continue
        out.append(
            Finding(
                "shim-unregistered",
                cid,
                ns,
                pid,
                f"/proc/{pid}",
                f"stub daemon ({identity.comm(pid)}) of run {run_id} with no registry entry "
                f"in {run_dir / 'shims'}",
                test,
            )
        )
    for t in identity.orphaned_tasks(run_id):
        if namespace is not None and t.namespace != namespace:
            continue
        out.append(
            Finding(
                "task-orphan",
                t.container_id,
                t.namespace,
                t.pid,
                f"/proc/{t.pid}",
                f"task process ({identity.comm(t.pid)}) alive, its shim pid {t.shim_pid} is gone",
                test,
            )
        )
    return out


def wait_until_clean(
    run_dir: Path,
    *,
    timeout: float = 1.0,
    ignore: Collection[Finding] = (),
    removed_at: float | Mapping[str, float] | None = None,
    **kwargs: Any,
) -> list[Finding]:
    """Findings that persist through a ``timeout``-second budget ([] as soon as all is gone).

    Probes repeatedly; a finding is reported only if the **last** probe, at the end of the
    budget, still shows it — a shim slow to exit inside the budget is not a leak. Each probe
    is capped by what is left of the budget (at least :data:`MIN_PROBE_S`), so this returns
    at most about that long after the budget. ``ignore``: findings that were there before
    (a snapshot from an earlier :func:`find_leaks`), matched by kind, namespace, container
    id and path, so only what is new is reported.

    Each finding returned carries its **detection latency**: from ``removed_at`` (monotonic;
    one time, or per container id) — else from the shim's journaled reply to ``Delete`` for
    that container, else from the start of this check — to the first probe of the streak
    that ended in the last probe. Every finding is journaled (``leaks``/``leak``).

    Raises:
        Unobservable: the last probe could not ask (containerd or a shim did not answer).
    """
    seen = {_key(f) for f in ignore}
    t0 = time.monotonic()
    deadline = t0 + timeout
    first: dict[tuple[str, str, str, str], float] = {}
    last: list[Finding] = []
    error: Exception | None = None
    probes = 0

    def probe() -> bool:
        nonlocal last, error, first, probes
        probes += 1
        try:
            found = find_leaks(run_dir, timeout=deadline - time.monotonic(), **kwargs)
        except (Unobservable, OSError) as exc:  # could not ask: not clean, not a leak
            error = exc
            return False
        except Exception as exc:  # a bug in a probe: raised as itself at the end
            error = exc
            return False
        now = time.monotonic()
        error = None
        last = [f for f in found if _key(f) not in seen]
        first = {k: first.get(k, now) for k in map(_key, last)}
        return not last

    with contextlib.suppress(TooSlow):
        wait_for(probe, timeout=timeout, what="shims cleaned up", interval=0.05)
    if isinstance(error, OSError):
        error = Unobservable(f"leak probe could not ask: {type(error).__name__}: {error}")
    if error is not None:
        journal_emit("unobservable", reason=str(error), probes=probes)
        raise error
    if not last:
        return []
    out = []
    replies = _LazyDeleteReplies(run_dir)
    for f in last:
        ref, ref_name = _removal_time(replies, f, removed_at)
        if ref is None:
            ref, ref_name = t0, "the check started"
        out.append(replace(f, latency=max(first[_key(f)] - ref, 0.0), latency_from=ref_name))
    for f in out:
        journal_emit(
            "leak",
            kind=f.kind,
            namespace=f.namespace,
            id=f.container_id,
            pid=f.pid,
            test=f.test,
            latency_ms=round((f.latency or 0.0) * 1000, 1),
            latency_from=f.latency_from,
            evidence=f.evidence,
            probes=probes,
        )
    return out


def journal_emit(event: str, **fields: object) -> None:
    """Journal a detector event (``leaks`` component): the timeline shows what it saw."""
    from harness import journal

    journal.emit("leaks", event, **fields)


class _LazyDeleteReplies:
    """The shims' journaled ``Delete`` replies by container id, loaded once, only if asked.

    Why lazy: merging the run's journal costs time proportional to the whole run, and only
    a leak without a caller-given removal time needs it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._by_shim: dict[tuple[int, str], float] | None = None

    def last(self, shim_pid: int, container_id: str) -> float | None:
        """The last Delete reply daemon ``shim_pid`` journaled for ``container_id`` (ids
        repeat across cases — every seed case calls its sandbox ``sb`` — pids do not)."""
        if self._by_shim is None:
            from harness.journal import merge

            self._by_shim = {}
            try:
                records = merge.load(self.run_dir)
            except (OSError, ValueError):
                records = []
            for r in records:
                if (
                    r.component == "shim"
                    and r.event == "reply"
                    and r.fields.get("method") == "Delete"
                ):
                    key = (r.pid, str(r.fields.get("id", "")))
                    self._by_shim[key] = max(self._by_shim.get(key, r.mono), r.mono)
        return self._by_shim.get((shim_pid, container_id))


def _removal_time(
    replies: _LazyDeleteReplies, f: Finding, removed_at: float | Mapping[str, float] | None
) -> tuple[float | None, str]:
    """When ``f``'s container was removed (monotonic), and what that time is."""
    if isinstance(removed_at, int | float):
        return float(removed_at), "removal"
    if isinstance(removed_at, Mapping) and f.container_id in removed_at:
        return float(removed_at[f.container_id]), "removal"
    if f.kind not in ("shim-process", "shim-unregistered"):
        return None, ""  # no daemon pid to match a journaled Delete against
    mono = replies.last(f.pid, f.container_id)
    return (mono, "the shim's Delete reply") if mono is not None else (None, "")


def _key(f: Finding) -> tuple[str, str, str, str]:
    return (f.kind, f.namespace, f.container_id, f.path)


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a shim daemon's task processes)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        if identity.ppid(int(d.name)) == pid:
            out.append(int(d.name))
    return out


def _kill(pids: Collection[int]) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, 9)


def reap(entry: dict) -> bool:
    """Kill a leaked shim (and its task processes) and remove its files; True if it lived.

    For teardown after a case that leaked on purpose: the evidence was judged, now the next
    case must start clean. Journaled, so the timeline shows who removed it.
    """
    from harness import journal

    pid = int(entry.get("pid") or 0)
    alive = bool(pid) and shim_alive(pid)
    ns, cid = entry.get("namespace", ""), entry.get("id", "")
    tasks = [t.pid for t in identity.task_procs() if (t.namespace, t.container_id) == (ns, cid)]
    if alive:
        children = children_of(pid)
        journal.emit("teardown", "reap_shim", id=cid, pid=pid, children=children, tasks=tasks)
        _kill({pid, *children, *tasks})
    elif tasks:
        journal.emit("teardown", "reap_orphans", id=cid, tasks=tasks)
        _kill(tasks)
    for key in ("socket", "registry"):
        with contextlib.suppress(OSError):
            Path(str(entry.get(key, ""))).unlink()
    return alive


def reap_findings(findings: Collection[Finding]) -> list[int]:
    """Kill the processes /proc-scan findings name (unregistered daemons, orphaned tasks);
    returns the pids killed. Registered shims go through :func:`reap` (it removes files)."""
    from harness import journal

    pids = []
    for f in findings:
        if f.kind == "shim-unregistered" and identity.is_stub(f.pid):
            pids += [f.pid, *children_of(f.pid)]
        elif f.kind == "task-orphan":
            pids.append(f.pid)
    if pids:
        journal.emit("teardown", "reap_processes", pids=pids)
        _kill(pids)
    return pids
