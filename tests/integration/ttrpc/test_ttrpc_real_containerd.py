"""Our ttrpc client against Go's ttrpc server: forward an event into a real containerd
1.6.20 over its ttrpc socket (the path every shim uses) and see it on the gRPC stream."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2

from harness import binaries
from harness.protos import events_pb2, events_service_pb2, events_service_pb2_grpc, events_ttrpc_pb2
from harness.providers.process import ManagedProcess, unix_open
from harness.ttrpc import Client, Code, TTRPCError

pytestmark = pytest.mark.needs("containerd")


@pytest.fixture
def containerd(reconverge_run):
    d = reconverge_run.path("ttrpc-ctd", mkdir=True)
    sock = d / "c.sock"
    cfg = d / "config.toml"
    cfg.write_text(
        f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
    )
    proc = ManagedProcess(
        reconverge_run, "containerd", [binaries.require("containerd"), "--config", cfg]
    ).start()
    proc.wait_ready(
        lambda: unix_open(sock) and unix_open(f"{sock}.ttrpc"),
        timeout=20,
        what="grpc and ttrpc sockets",
    )
    yield sock
    proc.stop()


def _envelope(ns: str, topic: str, event) -> bytes:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    env = events_ttrpc_pb2.Envelope(
        timestamp=ts,
        namespace=ns,
        topic=topic,
        event=any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString()),
    )
    return events_ttrpc_pb2.ForwardRequest(envelope=env).SerializeToString()


def test_forwarded_event_reaches_subscribers(containerd):
    async def main():
        async with grpc.aio.insecure_channel(f"unix://{containerd}") as ch:
            sub = events_service_pb2_grpc.EventsStub(ch).Subscribe(
                events_service_pb2.SubscribeRequest(filters=['topic=="/tasks/exit"'])
            )
            client = await Client.connect(f"unix://{containerd}.ttrpc")
            exit_event = events_pb2.TaskExit(container_id="c1", id="c1", exit_status=137)
            # The subscription is live once containerd accepted the stream: forward until
            # the one pending read completes (never cancel it: that ends the gRPC call).
            reader = asyncio.ensure_future(sub.read())
            got = None
            for _ in range(50):
                await client.call(
                    "containerd.services.events.ttrpc.v1.Events",
                    "Forward",
                    _envelope("rcv", "/tasks/exit", exit_event),
                    timeout=5,
                )
                done, _ = await asyncio.wait({reader}, timeout=0.2)
                if done:
                    got = reader.result()
                    break
            assert got is not None, "no event reached the subscriber"
            decoded = events_pb2.TaskExit.FromString(got.event.value)
            assert (got.namespace, got.topic, got.event.type_url) == (
                "rcv",
                "/tasks/exit",
                "containerd.events.TaskExit",
            )
            assert decoded.exit_status == 137
            with pytest.raises(TTRPCError) as bad:
                await client.call(
                    "containerd.services.events.ttrpc.v1.Events",
                    "Forward",
                    _envelope("rcv", "no-leading-slash", exit_event),
                    timeout=5,
                )
            assert bad.value.code == Code.INVALID_ARGUMENT
            with pytest.raises(TTRPCError) as missing:
                await client.call("containerd.services.events.ttrpc.v1.Events", "Nope", timeout=5)
            assert missing.value.code == Code.UNIMPLEMENTED
            await client.close()
            sub.cancel()

    asyncio.run(main())
