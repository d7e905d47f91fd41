"""What the reconciler can do to the runtime: containerd's task API and, like ``ctr shim``,
the shim's own socket.

Every containerd call goes through the client the reconciler was given (in the suites,
through toxiproxy); the shim socket is dialled directly, as ``ctr shim shutdown`` does,
because that is the only way to reach a shim containerd has already forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import grpc

from harness import journal
from harness.protos import shim_task_pb2
from harness.providers.containerd_client import ContainerdClient
from harness.ttrpc import Client, Closed, TTRPCError

TASK_SERVICE = "containerd.task.v2.Task"
T = TypeVar("T")


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.NOT_FOUND


def describe(exc: BaseException) -> str:
    """``CODE: details`` for gRPC errors, the type and text otherwise."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


class StatusUnknown(Exception):
    """containerd answered, but with status UNKNOWN (the shim's State failed inside it)."""


class Runtime:
    """Task operations for one namespace, counted so quiescence can see calls in flight."""

    def __init__(self, client: ContainerdClient, state_dir: Path) -> None:
        self.client = client
        self.state_dir = state_dir
        self.inflight = 0
        self.last_call_end = time.monotonic()

    @property
    def namespace(self) -> str:
        return self.client.namespace

    async def _counted(self, coro: Awaitable[T]) -> T:
        self.inflight += 1
        try:
            return await coro
        finally:
            self.inflight -= 1
            self.last_call_end = time.monotonic()

    async def create(self, sid: str, runtime: str, annotations: dict[str, str]) -> int:
        await self._counted(self.client.create_container(sid, runtime, annotations=annotations))
        await self._counted(self.client.create_task(sid))
        return int(await self._counted(self.client.start(sid)))

    async def pause(self, sid: str, timeout: float | None) -> None:
        await self._counted(self.client.pause(sid, timeout=timeout))

    async def resume(self, sid: str, timeout: float | None) -> None:
        await self._counted(self.client.resume(sid, timeout=timeout))

    async def status(self, sid: str, timeout: float) -> str:
        """The task's status; a status containerd could not load is an error, not UNKNOWN.

        Why: containerd 1.6.20's ``Tasks.Get`` answers OK with status UNKNOWN when the shim's
        ``State`` times out inside containerd, but fails DEADLINE_EXCEEDED when the client's
        deadline fires first — which one wins is a race. Both mean "could not load".
        """
        status = str(await self._counted(self.client.status(sid, timeout=timeout)))
        if status == "UNKNOWN":
            raise StatusUnknown(f"task {sid}: containerd could not load its status")
        return status

    async def kill(self, sid: str, signal: int = 9) -> None:
        await self._counted(self.client.kill(sid, signal))

    async def wait(self, sid: str) -> int:
        # not counted: an exit watcher waits for the life of the sandbox
        return await self.client.wait(sid, timeout=None)

    async def delete(self, sid: str, timeout: float | None = None) -> int:
        return int(await self._counted(self.client.delete_task(sid, timeout=timeout)))

    async def delete_container(self, sid: str) -> None:
        await self._counted(self.client.delete_container(sid))

    def shim_address(self, sid: str) -> str:
        """The shim address containerd wrote into the bundle (read it while the bundle lives)."""
        f = self.state_dir / "io.containerd.runtime.v2.task" / self.namespace / sid / "address"
        try:
            return f.read_text()
        except OSError:
            return ""

    async def shim_answers(self, address: str, sid: str, timeout: float) -> bool:
        """A ttrpc ``Connect`` on the shim socket succeeds."""
        try:
            client = await Client.connect(address, timeout=timeout)
        except (OSError, TimeoutError):
            return False
        try:
            req = shim_task_pb2.ConnectRequest(id=sid).SerializeToString()
            await client.call(TASK_SERVICE, "Connect", req, timeout=timeout)
            return True
        except (Closed, TTRPCError, OSError):
            return False
        finally:
            await client.close()

    async def shim_shutdown(self, address: str, sid: str, timeout: float) -> None:
        """``Shutdown`` straight to the shim (``ctr shim shutdown``); ``ttrpc: closed`` = done."""
        client = await Client.connect(address, timeout=timeout)
        try:
            req = shim_task_pb2.ShutdownRequest(id=sid).SerializeToString()
            await self._counted(client.call(TASK_SERVICE, "Shutdown", req, timeout=timeout))
            journal.emit("reconciler", "shim_shutdown", id=sid, outcome="OK")
        except Closed:
            journal.emit("reconciler", "shim_shutdown", id=sid, outcome="ttrpc: closed")
        finally:
            await client.close()
