"""One look at what a kind node holds, taken *inside* the node (``-m harness.checks.node_probe``).

Why inside: the node is its own PID and mount namespace with its own containerd; the stub's
registry (``/run/reconverge-shim``), the daemons' working directories and containerd's
socket are only meaningful there. One ``docker exec`` of this module is one consistent
snapshot (one round trip instead of one per question), and it reuses the harness's own
identity rules (:mod:`harness.shim.identity`: a daemon by its process name, never argv) —
the node image carries this package (``/opt/reconverge/lib``), so the probe and the host
agree on what a stub daemon is.

What it prints (one JSON object; the host side is :mod:`harness.checks.node_leaks`):

- ``daemons``: every live stub daemon — pid, ppid, start ticks, the (namespace, id) of its
  bundle directory, its registry entry if one matches (pid and start time), whether it
  answers ``Connect`` and what ``State`` says about its own id (``NO_TASK``: its task map
  no longer holds it);
- ``registry``: every registry entry (a dead daemon's stale entry included);
- ``tasks``: containerd's tasks in the namespace (``ctr tasks ls``), each with the ppid and
  process name of its pid; ``containers``: containerd's containers with their runtime and,
  for stub-runtime ones, the CRI labels and ``io.kubernetes.cri.*`` annotations that name
  the pod (the attribution of a shim whose bundle is gone);
- ``orphans``: task processes whose daemon is gone (the stub's task marker);
- ``errors``: what could not be read (containerd not answering is the important one).

Standard library only at import (plus :mod:`harness.shim.identity`); the ttrpc probes
import protobuf lazily, and their failure is reported, never raised.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.shim import identity

NAMESPACE = "k8s.io"
SHIMS_DIR = "/run/reconverge-shim"
#: runtime of the stub in containerd's container records
STUB_RUNTIME = "io.containerd.stub.v2"
#: CRI label/annotation keys that name a container's pod (containerd 1.6 CRI)
POD_KEYS = (
    "io.cri-containerd.kind",
    "io.kubernetes.pod.name",
    "io.kubernetes.pod.namespace",
    "io.kubernetes.pod.uid",
    "io.kubernetes.container.name",
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri.sandbox-name",
    "io.kubernetes.cri.sandbox-namespace",
    "io.kubernetes.cri.sandbox-uid",
    "io.kubernetes.cri.container-type",
)
CTR_TIMEOUT_S = 10.0


def _ctr(ctr: list[str], namespace: str, *args: str) -> str:
    """Output of ``ctr -n <ns> <args>``; raises RuntimeError with its stderr on failure."""
    try:
        out = subprocess.run(
            [*ctr, "-n", namespace, *args],
            capture_output=True,
            text=True,
            timeout=CTR_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"{' '.join(ctr)} {' '.join(args)}: {exc}") from None
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(ctr)} {' '.join(args)}: {out.stderr.strip()[:300]}")
    return out.stdout


def _rows(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.splitlines()[1:] if ln.strip()]


def tasks(ctr: list[str], namespace: str) -> dict[str, dict[str, Any]]:
    """containerd's tasks: id -> pid, status, and the pid's parent and name in this node."""
    out: dict[str, dict[str, Any]] = {}
    for r in _rows(_ctr(ctr, namespace, "tasks", "ls")):
        if len(r) < 3:
            continue
        pid = int(r[1]) if r[1].isdigit() else 0
        out[r[0]] = {
            "pid": pid,
            "status": r[2],
            "ppid": identity.ppid(pid) if pid else None,
            "comm": identity.comm(pid) if pid else "",
        }
    return out


def containers(ctr: list[str], namespace: str) -> dict[str, dict[str, Any]]:
    """containerd's containers; the stub-runtime ones with the labels that name their pod."""
    out: dict[str, dict[str, Any]] = {}
    for r in _rows(_ctr(ctr, namespace, "containers", "ls")):
        if len(r) < 3:
            continue
        cid, runtime = r[0], r[-1]
        entry: dict[str, Any] = {"runtime": runtime, "pod": {}}
        if runtime == STUB_RUNTIME:
            try:
                info = json.loads(_ctr(ctr, namespace, "containers", "info", cid))
            except (RuntimeError, ValueError):
                info = {}  # removed between the two calls
            labels = dict(info.get("Labels") or {})
            ann = dict((info.get("Spec") or {}).get("annotations") or {})
            entry["pod"] = {k: v for k, v in {**ann, **labels}.items() if k in POD_KEYS}
        out[cid] = entry
    return out


def _state(socket_path: str, cid: str, timeout: float) -> tuple[bool | None, str, str]:
    """(answers Connect, State of its own id, error) over the daemon's own socket.

    ``State`` answering NotFound is ``NO_TASK`` (the map no longer holds the id).
    """
    try:
        from harness.checks.leaks import connect_probe, run_sync
        from harness.protos import shim_task_pb2, task_types_pb2
        from harness.ttrpc import Client, Code, TTRPCError
        from harness.verdict import Unobservable
    except ImportError as exc:  # a node image without the ttrpc pieces: say so
        return None, "", f"ImportError: {exc}"
    try:
        answers = connect_probe(socket_path, cid, timeout)
    except Unobservable as exc:
        return None, "", str(exc)
    if not answers:
        return False, "", ""
    names = {v: k for k, v in task_types_pb2.Status.items()}

    async def ask() -> str:
        client = await Client.connect(f"unix://{socket_path}", timeout=timeout)
        try:
            req = shim_task_pb2.StateRequest(id=cid).SerializeToString()
            raw = await client.call("containerd.task.v2.Task", "State", req, timeout=timeout)
            return names.get(shim_task_pb2.StateResponse.FromString(raw).status, "UNKNOWN")
        finally:
            await client.close()

    try:
        return True, run_sync(ask), ""
    except TTRPCError as exc:
        if exc.code == Code.NOT_FOUND:
            return True, "NO_TASK", ""
        return True, "", f"State: {exc}"
    except (OSError, TimeoutError) as exc:
        return True, "", f"State: {type(exc).__name__}: {exc}"


def daemons(shims_dir: Path, timeout: float) -> list[dict[str, Any]]:
    """Every live stub daemon in this pid namespace, with its entry and its own answer."""
    entries = identity.registry_entries(shims_dir)
    out = []
    for pid in identity.stub_pids():
        entry = next((e for e in entries if identity.entry_is(e, pid)), None)
        ns, cid = identity.bundle_of(pid) or ("", "")
        if entry:
            ns, cid = str(entry.get("namespace", ns)), str(entry.get("id", cid))
        d: dict[str, Any] = {
            "pid": pid,
            "ppid": identity.ppid(pid),
            "start": identity.start_ticks(pid),
            "namespace": ns,
            "id": cid,
            "registered": entry is not None,
            "socket": str((entry or {}).get("socket", "")),
            "answers": None,
            "status": "",
            "error": "",
        }
        if d["socket"]:
            d["answers"], d["status"], d["error"] = _state(d["socket"], cid, timeout)
        out.append(d)
    return out


def orphans() -> list[dict[str, Any]]:
    """Task processes a daemon spawned whose daemon is gone (a panicked or killed shim)."""
    return [
        {"pid": t.pid, "namespace": t.namespace, "id": t.container_id, "shim_pid": t.shim_pid}
        for t in identity.task_procs()
        if not t.shim_alive()
    ]


def probe(
    *,
    shims_dir: Path = Path(SHIMS_DIR),
    namespace: str = NAMESPACE,
    ctr: list[str] | None = None,
    timeout: float = 1.0,
) -> dict[str, Any]:
    """Everything in the module docstring, as one dict (never raises for a truth source)."""
    ctr = ctr or ["ctr"]
    errors: dict[str, str] = {}
    view: dict[str, Any] = {"mono": time.monotonic(), "pid_ns": os.readlink("/proc/self/ns/pid")}
    view["daemons"] = daemons(shims_dir, timeout)
    view["registry"] = identity.registry_entries(shims_dir)
    view["orphans"] = orphans()
    for key, read in (("tasks", tasks), ("containers", containers)):
        try:
            view[key] = read(ctr, namespace)
        except RuntimeError as exc:
            view[key] = {}
            errors[key] = str(exc)
    view["errors"] = errors
    return view


def main(argv: list[str] | None = None) -> int:
    """Print :func:`probe`'s JSON; exit 0 (what could not be read is in ``errors``)."""
    p = argparse.ArgumentParser(prog="python3 -m harness.checks.node_probe")
    p.add_argument("--shims-dir", default=SHIMS_DIR)
    p.add_argument("--namespace", default=NAMESPACE)
    p.add_argument("--ctr", default="ctr", help="ctr command (split on spaces)")
    p.add_argument("--timeout", type=float, default=1.0, help="cap of each shim probe")
    a = p.parse_args(argv)
    view = probe(
        shims_dir=Path(a.shims_dir), namespace=a.namespace, ctr=a.ctr.split(), timeout=a.timeout
    )
    json.dump(view, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
