"""The shim daemon: serves the task API on the socket ``start`` bound, until Shutdown.

Every request passes one interceptor that journals it and evaluates the failpoints
``shim.<Method>.before`` (before the method applies) and ``shim.<Method>.after`` (applied,
reply not yet sent). Actions: ``error(msg)`` / ``error(NotFound:msg)`` answer with a status
(Unknown unless a code name prefixes the message), ``delay``/``hang`` wait, ``panic`` kills
the daemon on the spot (like an unrecovered Go panic), ``close`` drops the connection
(containerd then treats the shim as dead), ``drop`` swallows the reply (the caller's
deadline fires although the work is done), ``duplicate(n)`` sends the reply n more times.

The failpoint control socket also answers two commands (``ControlClient.command``):
``info`` (tasks, pids, incarnations) and ``late_exit`` (a TaskExit of an earlier
incarnation), both run on the daemon's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import failpoints
from harness import journal
from harness.shim import identity, relay, sites
from harness.shim.events import Publisher, events_address
from harness.shim.main import parse_flags
from harness.shim.paths import ShimPaths, file_id, owner_lock, unlink_if_same
from harness.shim.service import SERVICE, TaskService, error_from_arg, read_annotations
from harness.ttrpc import CallContext, NoReply, Server, TTRPCError
from harness.ttrpc.server import Handler

PR_SET_CHILD_SUBREAPER = 36
#: The listening socket ``start`` bound, as an fd number (cold: inherited through spawn;
#: warm: kept open across the fork server's fork).
ENV_FD = "RECONVERGE_SHIM_FD"


def request_id(payload: bytes) -> str:
    """Field 1 (``id``) of any task request, without knowing its message type."""
    if len(payload) < 2 or payload[0] != 0x0A:
        return ""
    length, shift, i = 0, 0, 1
    while i < len(payload):
        b = payload[i]
        length |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
    return payload[i : i + length].decode(errors="replace")


class Daemon:
    """Wiring: server, service, publisher, reaper, control endpoint, registry file."""

    def __init__(self, flags: dict[str, str], *, forked: bool = False) -> None:
        self.flags = flags
        self.forked = forked
        self.namespace = flags.get("namespace", "default")
        self.id = flags.get("id", "")
        self.paths = ShimPaths.of(flags.get("address", ""), self.namespace, self.id)
        self.stop = asyncio.Event()
        self.publisher = Publisher(self.namespace, events_address())
        self.service = TaskService(
            self.namespace,
            self.publisher,
            self.stop.set,
            history=self.paths.exits,
            on_retire=self.retire,
        )
        #: (device, inode) of the socket and control socket as this daemon bound them: at
        #: exit it removes a path only while it is still this file (see :meth:`retire`)
        self.socket_id: tuple[int, int] | None = None
        self.control_id: tuple[int, int] | None = None
        self.server = Server(interceptor=self.intercept)
        for method, handler in self.service.handlers().items():
            self.server.register(SERVICE, method, handler)
        self.control: failpoints.ControlServer | None = None
        self.relay: relay.UnixRelay | None = None
        self.proxy: dict[str, str] = {}

    async def intercept(self, payload: bytes, ctx: CallContext, handler: Handler) -> bytes:
        t0 = time.monotonic()
        rid = request_id(payload)
        journal.emit(
            "shim",
            "request",
            method=ctx.method,
            id=rid,
            stream_id=ctx.stream_id,
            timeout_ms=ctx.timeout_nano // 1_000_000,
        )
        outcome = "ok"
        try:
            await self._fault(ctx, "before")
            result = await handler(payload, ctx)
            await self._fault(ctx, "after")
            return result
        except NoReply:
            outcome = "no reply"
            raise
        except TTRPCError as exc:
            outcome = f"{getattr(exc.code, 'name', exc.code)}: {exc.message}"
            raise
        except Exception as exc:
            outcome = f"UNKNOWN: {exc}"
            raise
        finally:
            journal.emit(
                "shim",
                "reply",
                method=ctx.method,
                id=rid,
                stream_id=ctx.stream_id,
                outcome=outcome,
                ms=round((time.monotonic() - t0) * 1000, 1),
            )

    async def _fault(self, ctx: CallContext, phase: str) -> None:
        name = sites.interceptor(ctx.method, phase)
        action = failpoints.point(name).evaluate()
        if action is None:
            return
        journal.emit(
            "shim", "fault", point=name, action=action.kind, arg=action.arg, stream_id=ctx.stream_id
        )
        kind = action.kind
        if kind == "error":
            raise error_from_arg(action.arg)
        if kind == "panic":
            os._exit(2)
        if kind == "close":
            ctx.connection.abort()
            raise NoReply()
        if kind == "drop":
            if phase == "before":
                await asyncio.Event().wait()  # never applied, never answered
            raise NoReply()
        if kind == "duplicate":
            ctx.reply_copies += action.count
            return
        if kind in ("delay", "hang"):
            with contextlib.suppress(failpoints.FailpointHangTimeout):
                await action.apply_async()

    @staticmethod
    def _on_loop(
        loop: asyncio.AbstractEventLoop, fn: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A control command run on the daemon's loop: the control server answers from its
        own thread, while tasks and the publisher belong to the loop."""

        async def call(args: dict[str, Any]) -> dict[str, Any]:
            return fn(args)

        def command(args: dict[str, Any]) -> dict[str, Any]:
            return asyncio.run_coroutine_threadsafe(call(args), loop).result(timeout=5.0)

        return command

    def reap(self) -> None:
        """SIGCHLD: collect every exited child; task exits go to the service."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            self.service.on_child_exit(pid, 128 - code if code < 0 else code)

    def retire(self) -> None:
        """Give up the socket paths (only while they are still ours), before exiting.

        Why before the Shutdown reply: containerd may create the same id again as soon as
        it has the reply, and that ``start`` binds the same path; a path still answering
        there would hand containerd this exiting daemon ("ttrpc: closed"), and one removed
        later would be the new daemon's. Serving goes on through the open fds until exit.
        containerd's runc shim removes its socket at exit unconditionally; ours checks the
        inode under the owner lock, because here a successor is routine, not a bug.
        """
        with owner_lock(self.paths):
            gone = [
                p
                for p, ident in (
                    (self.paths.socket, self.socket_id),
                    (self.paths.control, self.control_id),
                )
                if unlink_if_same(p, ident)
            ]
            # Retired for good: the exit cleanup must not look again. A successor's socket
            # bound at the same path can get the very inode number just freed (tmpfs and
            # ext4 reuse it at once), so a later (device, inode) match would remove it.
            self.socket_id = self.control_id = None
        journal.emit("shim", "retired", removed=gone)

    def _cleanup_own_files(self) -> None:
        """At exit: remove each per-id file only if it is still this daemon's; a successor
        of the same id (a re-create) owns the paths by now and keeps them."""
        me = os.getpid()
        with owner_lock(self.paths):
            unlink_if_same(self.paths.socket, self.socket_id)
            unlink_if_same(self.paths.control, self.control_id)
            kept = []
            for path, owner in (
                (self.paths.pidfile, _pid_in_pidfile(self.paths.pidfile)),
                (self.paths.registry, _pid_in_registry(self.paths.registry)),
            ):
                if owner == me:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                elif owner is not None:
                    kept.append(path)
        if kept:
            journal.emit("shim", "kept_successor_files", files=kept)

    def _begin_exit(self) -> None:
        """SIGTERM/SIGINT: retire the socket paths at once, then stop like a Shutdown."""
        if not self.stop.is_set():
            self.retire()
        self.stop.set()

    def write_registry(self) -> None:
        data = {
            "id": self.id,
            "namespace": self.namespace,
            "pid": os.getpid(),
            "pid_start": identity.start_ticks(os.getpid()),
            "socket": self.paths.socket,
            "control": self.paths.control,
            "bundle": os.getcwd(),
            "containerd_address": self.flags.get("address", ""),
            "started_at": time.time(),
            **self.proxy,
        }
        tmp = self.paths.registry.removesuffix(".json") + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(data))
        os.replace(tmp, self.paths.registry)

    async def _listen(self, sock: socket.socket) -> None:
        """Serve on ``start``'s socket, or put toxiproxy between it and us (``relay``)."""
        annotations = read_annotations(os.getcwd())
        events_to = annotations.get(relay.ANNOTATION_EVENTS_ADDRESS, "")
        if events_to:  # shim -> containerd events leg, e.g. through a toxiproxy proxy
            self.publisher.address = events_to
            journal.emit("shim", "events_address", address=events_to)
        api = relay.toxiproxy_api(annotations, os.environ)
        if not api:
            await self.server.serve_socket(sock)
            return
        direct = await self.server.serve("tcp://127.0.0.1:0")
        # the pid too: a re-created id's new daemon relays while this one may still be
        # deleting its proxy on the way out; a shared name would delete the new one's
        name = f"shim-{self.paths.key}-{os.getpid()}"
        try:
            listen = relay.create_proxy(api, name, direct.removeprefix("tcp://"))
        except relay.RelayError as exc:
            # fail loudly: serving unrelayed would make the test's toxics silently inert;
            # stderr is containerd's log FIFO, the journal is the test's failure bundle
            journal.emit("shim", "relay_failed", error=str(exc))
            sys.stderr.write(f"containerd-shim-stub-v2: {exc}\n")
            raise
        self.relay = relay.UnixRelay(listen)
        await self.relay.serve(sock)
        self.proxy = {"toxiproxy": api, "proxy": name, "direct": direct, "proxy_listen": listen}
        journal.emit("shim", "relay", **self.proxy)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        loop.add_signal_handler(signal.SIGTERM, self._begin_exit)
        loop.add_signal_handler(signal.SIGINT, self._begin_exit)
        # ``start`` bound it for us; any later ``start`` of the id finds it answering
        self.socket_id = file_id(self.paths.socket)
        with open(self.paths.pidfile, "w") as f:
            f.write(str(os.getpid()))
        self.control = failpoints.serve(
            f"unix:{self.paths.control}",
            commands={
                "info": self._on_loop(loop, self.service.info),
                "late_exit": self._on_loop(loop, self.service.late_exit),
            },
        )
        self.control_id = file_id(self.paths.control)
        self.publisher.start()
        fd = int(os.environ[ENV_FD])
        await self._listen(socket.socket(fileno=fd))
        self.write_registry()
        journal.emit(
            "shim",
            "serving",
            id=self.id,
            namespace=self.namespace,
            socket=self.paths.socket,
            pid=os.getpid(),
            forked=self.forked,
        )
        await self.stop.wait()
        journal.emit("shim", "exiting", id=self.id, remaining=sorted(self.service.tasks))
        await self.publisher.flush(timeout=3.0)
        for task in self.service.tasks.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(task.pid, signal.SIGKILL)
        if self.relay is not None:
            await self.relay.close()
            relay.delete_proxy(self.proxy["toxiproxy"], self.proxy["proxy"])
        await self.server.close()
        await self.publisher.close()
        if self.control is not None:
            self.control.close()
        self._cleanup_own_files()


def _pid_in_pidfile(path: str) -> int | None:
    """The pid a pidfile names (None: no file; 0: unreadable)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _pid_in_registry(path: str) -> int | None:
    """The daemon pid a registry entry names (None: no entry; 0: unreadable)."""
    try:
        with open(path) as f:
            entry = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return 0
    try:
        return int(entry.get("pid") or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def main(argv: list[str] | None = None, *, forked: bool = False) -> int:
    """Serve until Shutdown. ``argv``: the flags containerd gave ``start`` (default: ours).

    ``forked``: called in a child of the fork server rather than a fresh interpreter, so
    every piece of process-wide state a fresh interpreter would not have is reset here,
    from *this* process's environment (the one containerd passed to ``start``).
    """
    identity.set_name()  # first: the leak detector and the janitor know a daemon by its name
    flags, _ = parse_flags(sys.argv[1:] if argv is None else argv)
    journal.from_env(f"shim:{flags.get('id', '?')}")
    if forked:
        failpoints.reset()  # nothing of the server's registry: names, counters, seed
    try:
        failpoints.load_env()
    except ValueError as exc:
        journal.emit("shim", "bad_failpoints_env", error=str(exc))
    asyncio.run(Daemon(flags, forked=forked).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
