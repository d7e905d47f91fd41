"""An asyncio client for the containerd API subset the harness uses (grpc.aio).

It dials the unix socket directly, or ``127.0.0.1:<port>`` — a toxiproxy proxy in front of
a TCP relay to that socket — so the same calls can be made through injected faults.
Every call carries the ``containerd-namespace`` header and is journaled with its outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from harness import journal
from harness.protos import (
    containers_pb2,
    containers_pb2_grpc,
    events_pb2,
    events_service_pb2,
    events_service_pb2_grpc,
    namespaces_pb2,
    namespaces_pb2_grpc,
    task_types_pb2,
    tasks_pb2,
    tasks_pb2_grpc,
    version_pb2_grpc,
)

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
STATUS_NAMES = {v: k for k, v in task_types_pb2.Status.items()}


@dataclass(frozen=True)
class Event:
    """A decoded event from ``Events.Subscribe``."""

    namespace: str
    topic: str
    event: Message | None
    timestamp_ns: int


def _decode(any_msg: any_pb2.Any) -> Message | None:
    name = any_msg.type_url.rsplit("/", 1)[-1]
    cls = getattr(events_pb2, name.removeprefix("containerd.events."), None)
    return cls.FromString(any_msg.value) if cls is not None else None


class ContainerdClient:
    """Typed helpers over containerd's gRPC services for one namespace."""

    def __init__(self, target: str, namespace: str) -> None:
        self.target = target if target.startswith("unix:") or ":" in target else f"unix://{target}"
        self.namespace = namespace
        # A client is one process's connection: gRPC's default global subchannel pool would
        # hand a new client (a reconciler "restarted" in this process) the old one's
        # subchannel, still in its reconnect backoff, which a real restarted process never
        # inherits. The backoff is capped at 3 s as containerd's own Go client caps it
        # (client.go: backoff MaxDelay 3 s), not gRPC's 120 s: after a run of resets the
        # default kept a healed reconciler cut off past the explorer's quiescence bound.
        self.channel = grpc.aio.insecure_channel(
            self.target,
            options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.max_reconnect_backoff_ms", 3000),
            ],
        )
        self.tasks = tasks_pb2_grpc.TasksStub(self.channel)
        self.containers = containers_pb2_grpc.ContainersStub(self.channel)
        self.namespaces = namespaces_pb2_grpc.NamespacesStub(self.channel)
        self.events = events_service_pb2_grpc.EventsStub(self.channel)
        self._version = version_pb2_grpc.VersionStub(self.channel)

    @property
    def _md(self) -> tuple[tuple[str, str], ...]:
        return (("containerd-namespace", self.namespace),)

    async def _call(self, name: str, rpc: Any, req: Message, timeout: float | None) -> Any:
        t0 = time.monotonic()
        try:
            resp = await rpc(req, metadata=self._md, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            journal.emit(
                "client",
                name,
                outcome=exc.code().name,
                details=exc.details(),
                ms=round((time.monotonic() - t0) * 1000, 1),
            )
            raise
        journal.emit("client", name, outcome="OK", ms=round((time.monotonic() - t0) * 1000, 1))
        return resp

    async def close(self) -> None:
        await self.channel.close()

    async def version(self, timeout: float = 5.0) -> str:
        resp = await self._version.Version(empty_pb2.Empty(), timeout=timeout)
        return str(resp.version)

    async def ensure_namespace(self) -> None:
        """Create this client's namespace (idempotent)."""
        ns = namespaces_pb2.Namespace(name=self.namespace)
        try:
            await self._call(
                "namespace.create",
                self.namespaces.Create,
                namespaces_pb2.CreateNamespaceRequest(namespace=ns),
                10,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise

    async def create_container(
        self, cid: str, runtime: str, *, annotations: dict[str, str] | None = None
    ) -> None:
        spec = json.dumps({"ociVersion": "1.0.2", "annotations": annotations or {}}).encode()
        c = containers_pb2.Container(
            id=cid,
            runtime=containers_pb2.Container.Runtime(name=runtime),
            spec=any_pb2.Any(type_url=SPEC_TYPE_URL, value=spec),
        )
        await self._call(
            "container.create",
            self.containers.Create,
            containers_pb2.CreateContainerRequest(container=c),
            10,
        )

    async def delete_container(self, cid: str) -> None:
        await self._call(
            "container.delete",
            self.containers.Delete,
            containers_pb2.DeleteContainerRequest(id=cid),
            10,
        )

    async def create_task(self, cid: str, timeout: float | None = 30) -> int:
        resp = await self._call(
            "task.create", self.tasks.Create, tasks_pb2.CreateTaskRequest(container_id=cid), timeout
        )
        return int(resp.pid)

    async def start(self, cid: str, timeout: float | None = 30) -> int:
        resp = await self._call(
            "task.start", self.tasks.Start, tasks_pb2.StartRequest(container_id=cid), timeout
        )
        return int(resp.pid)

    async def pause(self, cid: str, timeout: float | None = None) -> None:
        await self._call(
            "task.pause", self.tasks.Pause, tasks_pb2.PauseTaskRequest(container_id=cid), timeout
        )

    async def resume(self, cid: str, timeout: float | None = None) -> None:
        await self._call(
            "task.resume", self.tasks.Resume, tasks_pb2.ResumeTaskRequest(container_id=cid), timeout
        )

    async def kill(self, cid: str, signal: int = 9, timeout: float | None = 10) -> None:
        await self._call(
            "task.kill",
            self.tasks.Kill,
            tasks_pb2.KillRequest(container_id=cid, signal=signal),
            timeout,
        )

    async def wait(self, cid: str, timeout: float | None = None) -> int:
        resp = await self._call(
            "task.wait", self.tasks.Wait, tasks_pb2.WaitRequest(container_id=cid), timeout
        )
        return int(resp.exit_status)

    async def delete_task(self, cid: str, timeout: float | None = 30) -> int:
        resp = await self._call(
            "task.delete", self.tasks.Delete, tasks_pb2.DeleteTaskRequest(container_id=cid), timeout
        )
        return int(resp.exit_status)

    async def status(self, cid: str, timeout: float | None = 5) -> str:
        """The task's status name (``RUNNING``, ``PAUSED``…); NOT_FOUND raises."""
        resp = await self._call(
            "task.get", self.tasks.Get, tasks_pb2.GetRequest(container_id=cid), timeout
        )
        return STATUS_NAMES.get(resp.process.status, "UNKNOWN")

    async def list_tasks(self, timeout: float | None = 5) -> dict[str, str]:
        resp = await self._call("task.list", self.tasks.List, tasks_pb2.ListTasksRequest(), timeout)
        return {p.id or p.container_id: STATUS_NAMES.get(p.status, "UNKNOWN") for p in resp.tasks}

    async def publish(self, topic: str, event: Message, timeout: float | None = 5) -> None:
        """Publish ``event`` on ``topic`` in this namespace (barriers, readiness probes)."""
        name = event.DESCRIPTOR.full_name
        req = events_service_pb2.PublishRequest(
            topic=topic, event=any_pb2.Any(type_url=name, value=event.SerializeToString())
        )
        await self._call("events.publish", self.events.Publish, req, timeout)

    async def subscribe(self, *filters: str) -> AsyncIterator[Event]:
        """Events for all namespaces matching ``filters`` (containerd's filter syntax)."""
        call = self.events.Subscribe(events_service_pb2.SubscribeRequest(filters=list(filters)))
        async for env in call:
            yield Event(env.namespace, env.topic, _decode(env.event), env.timestamp.ToNanoseconds())
