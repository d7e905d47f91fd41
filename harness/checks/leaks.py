"""Leak detector for shims: what outlived the task that needed it, and who created it.

A shim is leaked when its process is alive (or its files remain) although containerd no
longer knows its task — containerd-shim-protocol.md §5.4 lists how upstream tests look;
this module does the same from the stub's registry files and ``/proc``, plus a live ttrpc
``Connect`` on the shim's socket (a dead shim answers ``ttrpc: closed`` or refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TooSlow
from harness.shim.paths import shims_dir
from harness.wait import wait_for


@dataclass(frozen=True)
class Finding:
    """One leaked thing, attributed to the container id (and test) that created it."""

    kind: str  # "shim-process", "shim-socket", "bundle"
    container_id: str
    namespace: str
    pid: int
    path: str
    evidence: str
    test: str = ""

    def __str__(self) -> str:
        who = f"{self.namespace}/{self.container_id}" + (f" ({self.test})" if self.test else "")
        return f"{self.kind} of {who}: {self.evidence} [{self.path}]"


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

    return asyncio.run(probe())


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
    """Tasks containerd lists for ``namespace`` (its gRPC socket, no proxy)."""
    from harness.providers.containerd_client import ContainerdClient

    async def ask() -> dict[str, str]:
        c = ContainerdClient(str(address), namespace)
        try:
            return await c.list_tasks(timeout=timeout)
        finally:
            await c.close()

    return asyncio.run(ask())


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


def find_leaks(
    run_dir: Path,
    *,
    state_dir: Path | None = None,
    namespace: str | None = None,
    known_tasks: set[str] = frozenset(),  # type: ignore[assignment]
    test: str = "",
    containerd_address: Path | None = None,
    containerd_pid: int | None = None,
) -> list[Finding]:
    """What outlived its containers: shims, sockets, bundles, containerd tasks, FIFOs.

    ``known_tasks`` are containers the caller still expects to exist. With
    ``containerd_address`` (and a ``namespace``), tasks containerd still lists are findings;
    with ``containerd_pid``, stdio FIFOs containerd holds for unknown containers are.
    """
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
    if containerd_address is not None and namespace is not None:
        with contextlib.suppress(Exception):  # a dead containerd has no tasks to leak
            for cid, status in containerd_tasks(containerd_address, namespace).items():
                if cid not in known_tasks:
                    findings.append(
                        Finding(
                            "containerd-task",
                            cid,
                            namespace,
                            0,
                            str(containerd_address),
                            f"containerd still lists the task ({status})",
                            test,
                        )
                    )
    if containerd_pid:
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


def wait_until_clean(run_dir: Path, *, timeout: float = 1.0, **kwargs: object) -> list[Finding]:
    """Findings that persist for ``timeout`` seconds ([] as soon as everything is gone)."""
    last: list[Finding] = []

    def probe() -> bool:
        nonlocal last
        last = find_leaks(run_dir, **kwargs)  # type: ignore[arg-type]
        return not last

    with contextlib.suppress(TooSlow):
        wait_for(probe, timeout=timeout, what="shims cleaned up", interval=0.05)
    return last


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
