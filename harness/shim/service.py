"""The ``containerd.task.v2.Task`` service: real child processes, runc-shim semantics.

Each task is a real process, so pids, signals and exit codes are real: it is spawned at
Create already stopped (a tiny ``sh`` wrapper stops itself before ``exec``), continued at
Start, paused with SIGSTOP and resumed with SIGCONT (state confirmed from ``/proc``). The
daemon is a child subreaper and reaps exits itself.

Semantics the seeds depend on:
- **Shutdown is a no-op while tasks remain** (runc); with none left it replies, then exits.
- **Delete is two-phase**: phase 1 marks the task deleted, then the failpoint
  ``shim.Delete.between``, then phase 2 removes it from the map and publishes TaskDelete.
  A Delete arriving between the phases gets NotFound, and a Shutdown then is a no-op —
  the window of the concurrent-delete leak (containerd PR #12400).
- Work completes even when the caller's deadline passed (ttrpc deadlines are advisory).
- **State waits on the task's lock while Pause or Resume applies** (runc's ``Init.mu``:
  ``Status`` takes the mutex ``Pause``/``Resume`` hold while runc freezes the cgroup), so a
  slow freeze — failpoint ``shim.<Pause|Resume>.locked``, evaluated inside the lock — makes
  a concurrent ``State`` slow too. ``.before``/``.after`` stay outside the lock: they model
  the request and the reply in transit, not the runtime's work.
- **Events carry the time their change happened**: TaskExit's ``exited_at`` and every
  envelope timestamp are taken when the exit is reaped / the pause applied, and travel
  with the queued event (a delayed or held event keeps them).
- **Incarnations**: each task started under an id is an incarnation, numbered per id and
  recorded (create and exit, with pid and exit time) in ``<shim key>.exits.jsonl`` next to
  the registry entry — a file that outlives the daemon, since the key only depends on
  (address, namespace, id). ``info`` reports them and ``late_exit`` publishes a TaskExit of
  an earlier one through the normal publisher (a late exit of a previous task).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import empty_pb2, timestamp_pb2

import failpoints
from harness import journal
from harness.protos import events_pb2, shim_task_pb2, task_types_pb2
from harness.shim import history, identity, sites, states
from harness.shim.events import Publisher
from harness.shim.states import State
from harness.ttrpc import CallContext, Code, TTRPCError
from harness.ttrpc.errors import code_by_name

SERVICE = "containerd.task.v2.Task"
ANNOTATION_FP = sites.ANNOTATION
ANNOTATION_COMMAND = "io.reconverge.stub.command"
DEFAULT_COMMAND = ["sleep", "1000000"]
EMPTY = empty_pb2.Empty().SerializeToString()

_STATUS = {
    State.CREATED: task_types_pb2.CREATED,
    State.RUNNING: task_types_pb2.RUNNING,
    State.PAUSED: task_types_pb2.PAUSED,
    State.STOPPED: task_types_pb2.STOPPED,
    State.DELETED: task_types_pb2.STOPPED,
}


def _ts(ns: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def proc_state(pid: int) -> str:
    """The one-letter kernel state of ``pid`` ("" when gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3].decode()
    except (OSError, ValueError):
        return ""


@dataclass
class Task:
    """One container's init process and what the shim knows about it."""

    id: str
    bundle: str
    pid: int
    state: State = State.CREATED
    exit_status: int = 0
    exited_ns: int = 0
    incarnation: int = 1
    created_ns: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    #: runc's per-process mutex: Pause/Resume hold it while applying, State waits on it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def error_from_arg(arg: str | None) -> TTRPCError:
    """``NotFound:gone`` -> NotFound "gone"; ``please retry`` -> Unknown "please retry"."""
    text = arg or "failpoint"
    head, sep, rest = text.partition(":")
    code = code_by_name(head.strip()) if sep else None
    if code is not None:
        return TTRPCError(code, rest.strip() or head)
    return TTRPCError(Code.UNKNOWN, text)


def read_annotations(bundle: str) -> dict[str, str]:
    """Annotations of the bundle's OCI spec (containerd writes ``config.json`` verbatim)."""
    try:
        spec = json.loads((Path(bundle) / "config.json").read_text() or "{}")
    except (OSError, ValueError):
        return {}
    ann = spec.get("annotations") or {}
    return {str(k): str(v) for k, v in ann.items()}


def apply_annotation_failpoints(annotations: dict[str, str]) -> dict[str, str]:
    """``…failpoint.<Method>`` -> ``shim.<Method>.before``; ``…<Method>.<phase>`` -> that phase."""
    enabled = {}
    for suffix, terms in failpoints.from_annotations(annotations, prefix=ANNOTATION_FP).items():
        name = sites.from_annotation(suffix)
        failpoints.enable(name, terms)
        enabled[name] = str(terms)
    return enabled


class TaskService:
    """State of every task in this shim, and the RPC handlers over it."""

    def __init__(
        self,
        namespace: str,
        publisher: Publisher,
        on_empty_shutdown: Callable[[], None],
        history: str | None = None,
        on_retire: Callable[[], None] | None = None,
    ):
        self.namespace = namespace
        #: called in an accepted Shutdown *before* its reply: the daemon gives up its socket
        #: path there, so the create containerd may send right after finds it free
        self._on_retire = on_retire
        self.publisher = publisher
        self.tasks: dict[str, Task] = {}
        self.deleting: dict[str, set[int]] = {}
        self._on_empty_shutdown = on_empty_shutdown
        #: the incarnation record (JSON lines; None: in memory only, for unit tests)
        self.history_path = history
        self._memory: list[dict[str, Any]] = []

    # -- incarnations --------------------------------------------------------------------
    def history(self) -> list[dict[str, Any]]:
        """Every create/exit record of this shim key, earlier daemons' included, oldest first."""
        if self.history_path is None:
            return list(self._memory)
        return history.read(self.history_path)

    def _record(self, **record: Any) -> None:
        record["shim_pid"] = os.getpid()
        self._memory.append(record)
        if self.history_path is not None:
            history.append(self.history_path, record)

    def incarnations(self, task_id: str) -> list[dict[str, Any]]:
        """One dict per task ever created under ``task_id`` (``history.fold``), oldest first."""
        return history.fold(self.history(), task_id)

    def info(self, args: dict[str, Any]) -> dict[str, Any]:
        """Control command ``info``: the shim, its tasks, and every incarnation of their ids
        (pass ``{"id": …}`` for an id no longer in the map)."""
        ids = sorted(set(self.tasks) | ({str(args["id"])} if args.get("id") else set()))
        return {
            "shim_pid": os.getpid(),
            "namespace": self.namespace,
            "tasks": {
                t.id: {
                    "pid": t.pid,
                    "incarnation": t.incarnation,
                    "state": t.state.value,
                    "created_ns": t.created_ns,
                    "exited_ns": t.exited_ns,
                    "exit_status": t.exit_status if t.exited.is_set() else None,
                }
                for t in self.tasks.values()
            },
            "incarnations": {i: self.incarnations(i) for i in ids},
            "held": [list(h) for h in self.publisher.held],
        }

    def late_exit(self, args: dict[str, Any]) -> dict[str, Any]:
        """Control command ``late_exit``: publish ``/tasks/exit`` for an *earlier* incarnation
        of a task id — the late exit event of a previous task under the same id.

        ``args``: ``id`` (default: the one task of this shim), and either ``pid`` +
        ``exited_at_ns`` (+ ``exit_status``, default 137) as the caller recorded them, or
        ``incarnation`` (default: the latest exited one that is not the current task) looked
        up in the record. Goes through the normal publisher: failpoints and the event leg's
        toxics apply. Returns the TaskExit's fields.

        Raises:
            ValueError: no such id/incarnation, or a bad argument.
        """
        task_id = str(args.get("id") or "")
        if not task_id:
            if len(self.tasks) != 1:
                raise ValueError(f"late_exit: give an id (tasks here: {sorted(self.tasks)})")
            task_id = next(iter(self.tasks))
        if "pid" in args:
            try:
                pid, at_ns = int(args["pid"]), int(args.get("exited_at_ns") or 0)
                status = int(args.get("exit_status", 137))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"late_exit: bad argument: {exc}") from None
            if pid <= 0 or at_ns <= 0:
                raise ValueError("late_exit: pid and exited_at_ns must be positive")
        else:
            pid, at_ns, status = self._earlier(task_id, args.get("incarnation"))
        journal.emit("shim", "late_exit", id=task_id, pid=pid, exited_ns=at_ns, exit_status=status)
        self.publisher.publish(
            "/tasks/exit",
            events_pb2.TaskExit(
                container_id=task_id, id=task_id, pid=pid, exit_status=status, exited_at=_ts(at_ns)
            ),
            at_ns=at_ns,
        )
        return {"id": task_id, "pid": pid, "exited_at_ns": at_ns, "exit_status": status}

    def _earlier(self, task_id: str, incarnation: Any) -> tuple[int, int, int]:
        """(pid, exited_ns, exit_status) of an exited incarnation that is not the live task."""
        current = self.tasks.get(task_id)
        done = [
            i
            for i in self.incarnations(task_id)
            if i["exited_ns"] and (current is None or i["incarnation"] != current.incarnation)
        ]
        if incarnation is not None:
            try:
                done = [i for i in done if i["incarnation"] == int(incarnation)]
            except (TypeError, ValueError):
                raise ValueError(f"late_exit: bad incarnation {incarnation!r}") from None
        if not done:
            raise ValueError(
                f"late_exit: no earlier exited incarnation of {task_id!r}"
                + (f" numbered {incarnation}" if incarnation is not None else "")
                + "; pass pid and exited_at_ns"
            )
        last = done[-1]
        return int(last["pid"]), int(last["exited_ns"]), int(last["exit_status"])

    # -- plumbing ----------------------------------------------------------------------
    def handlers(self) -> dict[str, Callable[[bytes, CallContext], Awaitable[bytes]]]:
        """Every task API method, implemented or answering Unimplemented."""
        impl = {
            "Create": self.create,
            "Start": self.start,
            "State": self.state,
            "Pids": self.pids,
            "Kill": self.kill,
            "Wait": self.wait,
            "Pause": self.pause,
            "Resume": self.resume,
            "Delete": self.delete,
            "Connect": self.connect,
            "Shutdown": self.shutdown,
            "Stats": self.stats,
        }
        for name in ("Exec", "ResizePty", "CloseIO", "Update", "Checkpoint"):
            impl[name] = self._unimplemented(name)
        return impl

    @staticmethod
    def _unimplemented(name: str) -> Callable[[bytes, CallContext], Awaitable[bytes]]:
        async def handler(payload: bytes, ctx: CallContext) -> bytes:
            raise TTRPCError(Code.UNIMPLEMENTED, f"{name} is not implemented by the stub shim")

        return handler

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise TTRPCError(Code.NOT_FOUND, "container not created")
        return task

    def _require(self, method: str, task: Task) -> None:
        refused = states.check(method, task.state)
        if refused is not None:
            raise TTRPCError(*refused)

    def on_child_exit(self, pid: int, status: int) -> None:
        """Called by the reaper: record the exit and publish TaskExit."""
        for task in self.tasks.values():
            if task.pid == pid and not task.exited.is_set():
                task.exit_status = status
                task.exited_ns = time.time_ns()  # the exit reaped: the event's time
                if task.state is not State.DELETED:
                    task.state = State.STOPPED
                task.exited.set()
                journal.emit("shim", "task_exited", id=task.id, pid=pid, exit_status=status)
                self._record(
                    event="exit",
                    id=task.id,
                    incarnation=task.incarnation,
                    pid=pid,
                    at_ns=task.exited_ns,
                    exit_status=status,
                )
                self.publisher.publish(
                    "/tasks/exit",
                    events_pb2.TaskExit(
                        container_id=task.id,
                        id=task.id,
                        pid=pid,
                        exit_status=status,
                        exited_at=_ts(task.exited_ns),
                    ),
                    at_ns=task.exited_ns,
                )

    # -- handlers ----------------------------------------------------------------------
    async def create(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.CreateTaskRequest.FromString(payload)
        if req.id in self.tasks:
            raise TTRPCError(Code.ALREADY_EXISTS, f"container {req.id} already exists")
        annotations = read_annotations(req.bundle)
        enabled = apply_annotation_failpoints(annotations)
        if enabled:
            journal.emit("shim", "failpoints_from_annotations", id=req.id, points=enabled)
        argv = DEFAULT_COMMAND
        if ANNOTATION_COMMAND in annotations:
            argv = [str(a) for a in json.loads(annotations[ANNOTATION_COMMAND])]
        # The wrapper stops itself before exec: a real pid now, running only after Start.
        wrapper = ["/bin/sh", "-c", 'kill -STOP $$; exec "$@"', "stub-init", *argv]
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            pid = os.posix_spawnp(
                wrapper[0],
                wrapper,
                # marked: if this daemon dies, the leak detector finds the orphan by it
                dict(os.environ) | identity.task_marker(self.namespace, req.id),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(devnull)
        earlier = self.incarnations(req.id)
        n = earlier[-1]["incarnation"] + 1 if earlier else 1
        task = Task(req.id, req.bundle, pid, incarnation=n, created_ns=time.time_ns())
        self.tasks[req.id] = task
        self._record(event="create", id=req.id, incarnation=n, pid=pid, at_ns=task.created_ns)
        await _until(lambda: proc_state(pid) in ("T", ""), 2.0)
        self.publisher.publish(
            "/tasks/create",
            events_pb2.TaskCreate(
                container_id=req.id, bundle=req.bundle, pid=pid, rootfs=list(req.rootfs)
            ),
        )
        return shim_task_pb2.CreateTaskResponse(pid=pid).SerializeToString()

    async def start(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.StartRequest.FromString(payload)
        task = self._task(req.id)
        self._require("Start", task)
        os.kill(task.pid, signal.SIGCONT)
        task.state = states.after("Start", task.state)
        self.publisher.publish(
            "/tasks/start", events_pb2.TaskStart(container_id=task.id, pid=task.pid)
        )
        return shim_task_pb2.StartResponse(pid=task.pid).SerializeToString()

    async def state(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.StateRequest.FromString(payload)
        task = self._task(req.id)
        async with task.lock:  # blocks while a Pause/Resume applies, like runc's Status
            return self._state_response(task)

    @staticmethod
    def _state_response(task: Task) -> bytes:
        resp = shim_task_pb2.StateResponse(
            id=task.id,
            bundle=task.bundle,
            pid=task.pid,
            status=_STATUS[task.state],
            exit_status=task.exit_status,
        )
        if task.exited_ns:
            resp.exited_at.CopyFrom(_ts(task.exited_ns))
        return resp.SerializeToString()

    async def pids(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.PidsRequest.FromString(payload)
        task = self._task(req.id)
        procs = [] if task.exited.is_set() else [task_types_pb2.ProcessInfo(pid=task.pid)]
        return shim_task_pb2.PidsResponse(processes=procs).SerializeToString()

    async def kill(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.KillRequest.FromString(payload)
        task = self._task(req.id)
        if task.exited.is_set():
            raise TTRPCError(*states.REFUSALS["Kill"])
        self._require("Kill", task)
        with contextlib.suppress(ProcessLookupError):
            os.kill(task.pid, req.signal or signal.SIGTERM)
            if task.state is State.PAUSED and req.signal not in (signal.SIGKILL,):
                os.kill(task.pid, signal.SIGCONT)
        return EMPTY

    async def wait(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.WaitRequest.FromString(payload)
        task = self._task(req.id)
        await task.exited.wait()
        return shim_task_pb2.WaitResponse(
            exit_status=task.exit_status, exited_at=_ts(task.exited_ns)
        ).SerializeToString()

    async def pause(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.PauseRequest.FromString(payload)
        task = self._task(req.id)
        async with task.lock:
            self._require("Pause", task)
            await _locked_fault(sites.locked("Pause"), task)
            os.kill(task.pid, signal.SIGSTOP)
            await _until(lambda: proc_state(task.pid) in ("T", "t", "Z", ""), 5.0)
            task.state = states.after("Pause", task.state)
            at_ns = time.time_ns()  # the pause applied: the event's time
        self.publisher.publish(
            "/tasks/paused", events_pb2.TaskPaused(container_id=task.id), at_ns=at_ns
        )
        return EMPTY

    async def resume(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.ResumeRequest.FromString(payload)
        task = self._task(req.id)
        async with task.lock:
            self._require("Resume", task)
            await _locked_fault(sites.locked("Resume"), task)
            os.kill(task.pid, signal.SIGCONT)
            await _until(lambda: proc_state(task.pid) not in ("T", "t"), 5.0)
            task.state = states.after("Resume", task.state)
            at_ns = time.time_ns()  # the resume applied: the event's time
        self.publisher.publish(
            "/tasks/resumed", events_pb2.TaskResumed(container_id=task.id), at_ns=at_ns
        )
        return EMPTY

    async def delete(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.DeleteRequest.FromString(payload)
        task = self._task(req.id)
        inflight = self.deleting.setdefault(task.id, set())
        if inflight:
            journal.emit(
                "shim",
                "delete_overlap",
                id=task.id,
                stream_id=ctx.stream_id,
                overlapping=sorted(inflight),
            )
        inflight.add(ctx.stream_id)
        try:
            self._require("Delete", task)
            # phase 1: the process is gone from the runtime's point of view
            if not task.exited.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(task.pid, signal.SIGKILL)
                await asyncio.wait_for(task.exited.wait(), 5.0)
            task.state = State.DELETED
            journal.emit("shim", "delete_phase1", id=task.id, stream_id=ctx.stream_id)
            action = failpoints.point(sites.DELETE_BETWEEN).evaluate()
            if action is not None:
                journal.emit("shim", "fault", point=sites.DELETE_BETWEEN, action=action.kind)
                await action.apply_async()
            # phase 2: drop the container from the map; only now can Shutdown exit
            self.tasks.pop(task.id, None)
            journal.emit(
                "shim",
                "delete_phase2",
                id=task.id,
                stream_id=ctx.stream_id,
                remaining=len(self.tasks),
            )
            self.publisher.publish(
                "/tasks/delete",
                events_pb2.TaskDelete(
                    container_id=task.id,
                    id="",
                    pid=task.pid,
                    exit_status=task.exit_status,
                    exited_at=_ts(task.exited_ns),
                ),
            )
            return shim_task_pb2.DeleteResponse(
                pid=task.pid, exit_status=task.exit_status, exited_at=_ts(task.exited_ns)
            ).SerializeToString()
        finally:
            inflight.discard(ctx.stream_id)

    async def connect(self, payload: bytes, ctx: CallContext) -> bytes:
        req = shim_task_pb2.ConnectRequest.FromString(payload)
        task = self.tasks.get(req.id)
        return shim_task_pb2.ConnectResponse(
            shim_pid=os.getpid(), task_pid=task.pid if task else 0, version="stub"
        ).SerializeToString()

    async def shutdown(self, payload: bytes, ctx: CallContext) -> bytes:
        if self.tasks:
            journal.emit("shim", "shutdown_noop", remaining=sorted(self.tasks))
            return EMPTY
        journal.emit("shim", "shutdown")
        if self._on_retire is not None:
            self._on_retire()
        ctx.after_reply = self._on_empty_shutdown
        return EMPTY

    async def stats(self, payload: bytes, ctx: CallContext) -> bytes:
        raise TTRPCError(Code.NOT_FOUND, "no cgroup for the stub shim's tasks")


async def _locked_fault(name: str, task: Task) -> None:
    """Failpoint ``name`` inside the task lock: a ``delay``/``hang`` is a slow freeze that
    every concurrent ``State`` waits out; ``error`` refuses with the lock released."""
    action = failpoints.point(name).evaluate()
    if action is None:
        return
    journal.emit("shim", "fault", point=name, action=action.kind, arg=action.arg, id=task.id)
    if action.kind == "panic":
        os._exit(2)
    if action.kind == "error":
        raise error_from_arg(action.arg)
    if action.kind in ("delay", "hang"):
        with contextlib.suppress(failpoints.FailpointHangTimeout):
            await action.apply_async()


async def _until(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll a kernel-side condition (process state) with a deadline; True if it held."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not cond():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)
    return True
