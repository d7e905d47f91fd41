"""Leak detector for shims: what outlived the task that needed it, and who created it.

A shim is leaked when its process is alive (or its files remain) although containerd no
longer knows its task — containerd-shim-protocol.md §5.4 lists how upstream tests look;
this module does the same from the stub's registry files and ``/proc``, plus a live ttrpc
``Connect`` on the shim's socket (a dead shim answers ``ttrpc: closed`` or refuses).

Besides the shim's own traces it asks containerd (gRPC ``Tasks.List``: tasks it still
lists) and counts the FIFO fds containerd holds against a baseline taken before the test.
Every finding names the container id and the test: the caller passes the test, or it is
looked up from the namespace's owner recorded with :func:`claim_namespace`.
Everything here is synchronous (fixtures and checkers call it between steps); the gRPC and
ttrpc probes run their own event loop, in a worker thread when the caller's loop is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import TooSlow
from harness.shim.paths import shims_dir
from harness.wait import wait_for

T = TypeVar("T")


@dataclass(frozen=True)
class Finding:
    """One leaked thing, attributed to the container id (and test) that created it."""

    kind: str  # "shim-process", "shim-socket", "bundle", "containerd-task", "fifo"
    container_id: str
    namespace: str
    pid: int
    path: str
    evidence: str
    test: str = ""

    def __str__(self) -> str:
        who = f"{self.namespace}/{self.container_id}"
        return f"{self.kind} of {who} (test {self.test or '?'}): {self.evidence} [{self.path}]"


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


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def shim_alive(pid: int) -> bool:
    """True when ``pid`` is a live stub-shim daemon."""
    return b"harness.shim.daemon" in _cmdline(pid)


def connect_answers(socket_path: str, container_id: str, timeout: float = 0.5) -> bool:
    """A ttrpc ``Connect`` on the shim's socket succeeds (the shim still serves)."""
    from harness.protos import shim_task_pb2
    from harness.ttrpc import Client

    async def probe() -> bool:
        try:
            client = await Client.connect(f"unix://{socket_path}", timeout=timeout)
        except OSError:
            return False
        try:
            req = shim_task_pb2.ConnectRequest(id=container_id).SerializeToString()
            await client.call("containerd.task.v2.Task", "Connect", req, timeout=timeout)
            return True
        except Exception:
            return False
        finally:
            await client.close()

    return run_sync(probe)


def registry(run_dir: Path | None = None) -> list[dict]:
    """Every shim registry entry (written by live daemons, left behind by leaked ones)."""
    d = (run_dir / "shims") if run_dir else shims_dir()
    out = []
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            out.append(json.loads(f.read_text()) | {"registry": str(f)})
        except (OSError, ValueError):
            continue
    return out


def containerd_tasks(address: Path, namespace: str, timeout: float = 5.0) -> dict[str, str]:
    """Tasks containerd lists for ``namespace`` (its gRPC socket, no proxy); errors raise."""
    tasks = _tasks_by_namespace(address, namespace, timeout, absent_is_empty=False)
    return {cid: status for (_, cid), status in tasks}


def _tasks_by_namespace(
    address: Path, namespace: str | None, timeout: float = 5.0, *, absent_is_empty: bool = True
) -> list[tuple[tuple[str, str], str]]:
    """((namespace, id), status) of every task containerd lists, in one or all namespaces.

    With ``absent_is_empty``, a containerd that is not there (UNAVAILABLE: killed) lists
    nothing — its tasks are then the shims' and bundles' business; any other error is
    raised, because "could not ask" must not read as "nothing leaked".
    """
    import grpc

    from harness.protos import namespaces_pb2
    from harness.providers.containerd_client import ContainerdClient

    async def ask() -> list[tuple[tuple[str, str], str]]:
        c = ContainerdClient(str(address), namespace or "default")
        try:
            if namespace is None:
                resp = await c.namespaces.List(
                    namespaces_pb2.ListNamespacesRequest(), timeout=timeout
                )
                names = [n.name for n in resp.namespaces]
            else:
                names = [namespace]
            out = []
            for ns in names:
                c.namespace = ns
                out += [
                    ((ns, cid), st) for cid, st in (await c.list_tasks(timeout=timeout)).items()
                ]
            return out
        except grpc.aio.AioRpcError as exc:
            if absent_is_empty and exc.code() == grpc.StatusCode.UNAVAILABLE:
                return []
            raise
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
    known_tasks: set[str] = frozenset(),  # type: ignore[assignment]
    test: str = "",
    containerd_address: Path | None = None,
    containerd_pid: int | None = None,
    fifo_baseline: Collection[str] | None = None,
) -> list[Finding]:
    """What outlived its containers: shims, sockets, bundles, containerd tasks, FIFOs.

    ``known_tasks`` are containers the caller still expects to exist. With
    ``containerd_address``, tasks containerd still lists (in ``namespace``, or in every
    namespace) are findings. With ``containerd_pid`` and ``fifo_baseline`` (``fifo_fds``
    of containerd before the test), every FIFO fd containerd holds beyond the baseline is;
    with ``containerd_pid`` alone, stdio FIFOs of containers whose shim ran in the
    namespace are. ``test`` names the test in every finding; without it the namespace's
    claimed owner is used.
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
) -> list[Finding]:
    findings: list[Finding] = []
    ours: set[str] = set()  # container ids whose shims ran in this namespace
    for entry in registry(run_dir):
        if namespace is None or entry.get("namespace") == namespace:
            ours.add(str(entry.get("id", "")))
    for entry in registry(run_dir):
        ns, cid = entry.get("namespace", ""), entry.get("id", "")
        if namespace is not None and ns != namespace:
            continue
        if cid in known_tasks:
            continue
        pid = int(entry.get("pid") or 0)
        if pid and shim_alive(pid):
            answers = connect_answers(entry.get("socket", ""), cid)
            findings.append(
                Finding(
                    "shim-process",
                    cid,
                    ns,
                    pid,
                    entry.get("socket", ""),
                    "daemon alive" + (", answers Connect" if answers else ""),
                    test,
                )
            )
        elif Path(entry.get("socket", "")).exists():
            findings.append(
                Finding(
                    "shim-socket", cid, ns, pid, entry["socket"], "socket file left behind", test
                )
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
        for (ns, cid), status in _tasks_by_namespace(containerd_address, namespace):
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


def wait_until_clean(
    run_dir: Path,
    *,
    timeout: float = 1.0,
    ignore: Collection[Finding] = (),
    **kwargs: object,
) -> list[Finding]:
    """Findings that persist for ``timeout`` seconds ([] as soon as everything is gone).

    ``ignore``: findings that were there before (a snapshot from an earlier
    :func:`find_leaks`), matched by kind, namespace, container id and path, so only what
    is new is reported. Raises the probe's error when the last probe failed: an
    unanswered question is not a clean namespace.
    """
    seen = {_key(f) for f in ignore}
    last: list[Finding] = []
    error: Exception | None = None

    def probe() -> bool:
        nonlocal last, error
        try:
            found = find_leaks(run_dir, **kwargs)  # type: ignore[arg-type]
            last = [f for f in found if _key(f) not in seen]
        except Exception as exc:
            error = exc
            raise
        error = None
        return not last

    with contextlib.suppress(TooSlow):
        wait_for(probe, timeout=timeout, what="shims cleaned up", interval=0.05)
    if error is not None:
        raise error
    return last


def _key(f: Finding) -> tuple[str, str, str, str]:
    return (f.kind, f.namespace, f.container_id, f.path)


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a shim daemon's task processes)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(d.name))
    return out


def reap(entry: dict) -> bool:
    """Kill a leaked shim (and its task processes) and remove its files; True if it lived.

    For teardown after a case that leaked on purpose: the evidence was judged, now the next
    case must start clean. Journaled, so the timeline shows who removed it.
    """
    from harness import journal

    pid = int(entry.get("pid") or 0)
    alive = bool(pid) and shim_alive(pid)
    if alive:
        children = children_of(pid)
        journal.emit("teardown", "reap_shim", id=entry.get("id"), pid=pid, children=children)
        for p in (pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, 9)
    for key in ("socket", "registry"):
        with contextlib.suppress(OSError):
            Path(str(entry.get(key, ""))).unlink()
    return alive
