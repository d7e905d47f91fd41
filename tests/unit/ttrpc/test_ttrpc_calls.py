"""Client and server over real unix sockets: statuses, concurrency, deadlines, loss."""

from __future__ import annotations

import asyncio

import pytest

from harness.protos import ttrpc_pb2
from harness.ttrpc import Client, Closed, Code, Server, TTRPCError, framing

SVC = "test.v1.Echo"


async def _server(tmp_path, **handlers):
    srv = Server()
    for method, fn in handlers.items():
        srv.register(SVC, method, fn)
    addr = await srv.serve(f"unix://{tmp_path}/t.sock")
    return srv, addr


async def _echo(payload, ctx):
    return payload + ctx.metadata.get("suffix", "").encode()


def test_round_trip_with_metadata(tmp_path):
    async def main():
        srv, addr = await _server(tmp_path, Echo=_echo)
        c = await Client.connect(addr)
        assert await c.call(SVC, "Echo", b"hi", metadata={"Suffix": "!"}) == b"hi!"
        await c.close()
        await srv.close()

    asyncio.run(main())


def test_unknown_service_and_method_are_unimplemented(tmp_path):
    async def main():
        srv, addr = await _server(tmp_path, Echo=_echo)
        c = await Client.connect(addr)
        with pytest.raises(TTRPCError) as e1:
            await c.call("nope.Svc", "Echo")
        with pytest.raises(TTRPCError) as e2:
            await c.call(SVC, "Nope")
        assert (e1.value.code, e1.value.message) == (Code.UNIMPLEMENTED, "service nope.Svc")
        assert (e2.value.code, e2.value.message) == (Code.UNIMPLEMENTED, "method Nope")
        assert str(e2.value) == "method Nope: not implemented"
        await c.close()
        await srv.close()

    asyncio.run(main())


def test_concurrent_calls_complete_out_of_order(tmp_path):
    async def main():
        release = asyncio.Event()
        order = []

        async def slow(payload, ctx):
            await release.wait()
            order.append("slow")
            return b"slow"

        async def fast(payload, ctx):
            order.append("fast")
            release.set()
            return b"fast"

        srv, addr = await _server(tmp_path, Slow=slow, Fast=fast)
        c = await Client.connect(addr)
        t_slow = asyncio.ensure_future(c.call(SVC, "Slow"))
        t_fast = asyncio.ensure_future(c.call(SVC, "Fast"))
        assert await asyncio.wait_for(asyncio.gather(t_slow, t_fast), 5) == [b"slow", b"fast"]
        assert order == ["fast", "slow"]
        await c.close()
        await srv.close()

    asyncio.run(main())


def test_deadline_then_late_response_is_dropped(tmp_path):
    async def main():
        release = asyncio.Event()
        seen_timeout = []

        async def late(payload, ctx):
            seen_timeout.append(ctx.timeout_nano)
            await release.wait()
            return b"late"

        srv, addr = await _server(tmp_path, Late=late, Echo=_echo)
        c = await Client.connect(addr)
        with pytest.raises(TTRPCError) as e:
            await c.call(SVC, "Late", timeout=0.05)
        assert e.value.code == Code.DEADLINE_EXCEEDED
        assert 0 < seen_timeout[0] <= 50_000_000
        release.set()
        assert await c.call(SVC, "Echo", b"x") == b"x"  # the connection survived
        await asyncio.wait_for(_until(lambda: c.late_responses == 1), 5)
        await c.close()
        await srv.close()

    asyncio.run(main())


def test_error_status_and_handler_exception(tmp_path):
    async def not_found(payload, ctx):
        raise TTRPCError(Code.NOT_FOUND, "container not created")

    async def boom(payload, ctx):
        raise RuntimeError("please retry")

    async def main():
        srv, addr = await _server(tmp_path, Missing=not_found, Boom=boom)
        c = await Client.connect(addr)
        with pytest.raises(TTRPCError, match="container not created: not found"):
            await c.call(SVC, "Missing")
        with pytest.raises(TTRPCError) as e:
            await c.call(SVC, "Boom")
        assert (e.value.code, str(e.value)) == (Code.UNKNOWN, "please retry: unknown")
        await c.close()
        await srv.close()

    asyncio.run(main())


def test_abort_mid_call_fails_pending_calls_with_closed(tmp_path):
    async def main():
        async def abort(payload, ctx):
            ctx.connection.abort()
            await asyncio.Event().wait()

        srv, addr = await _server(tmp_path, Abort=abort)
        c = await Client.connect(addr)
        with pytest.raises(Closed) as e:
            await asyncio.wait_for(c.call(SVC, "Abort"), 5)
        assert str(e.value) == "ttrpc: closed"
        with pytest.raises(Closed):
            await c.call(SVC, "Abort")
        await c.close()
        await srv.close()

    asyncio.run(main())


def test_closed_mid_frame_and_even_stream_id(tmp_path):
    async def main():
        srv, addr = await _server(tmp_path, Echo=_echo)
        reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/t.sock")
        req = ttrpc_pb2.Request(service=SVC, method="Echo", payload=b"x").SerializeToString()
        writer.write(framing.encode(2, framing.TYPE_REQUEST, req))
        await writer.drain()
        dec = framing.Decoder()
        frames = []
        while not frames:
            frames = dec.feed(await asyncio.wait_for(reader.read(4096), 5))
        resp = ttrpc_pb2.Response.FromString(frames[0].payload)
        assert frames[0].stream_id == 2 and resp.status.code == Code.INVALID_ARGUMENT
        writer.write(framing.encode(1, framing.TYPE_REQUEST, req)[:7])  # half a header
        await writer.drain()
        writer.close()
        # the server must survive a peer that vanished mid-frame
        c = await Client.connect(addr)
        assert await c.call(SVC, "Echo", b"ok") == b"ok"
        await c.close()
        await srv.close()

    asyncio.run(main())


async def _until(cond):
    while not cond():
        await asyncio.sleep(0.005)
