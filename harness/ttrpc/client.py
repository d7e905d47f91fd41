"""asyncio ttrpc client: odd, increasing stream ids; many calls in flight per connection.

Behaviour copied from the Go client on purpose (it is what containerd does to a shim):
a call whose deadline passes fails locally with DeadlineExceeded while its stream stays
registered, so a late response is consumed and dropped; losing the connection fails every
pending call with ``ttrpc: closed``.
"""

from __future__ import annotations

import asyncio
import contextlib

from harness.protos import ttrpc_pb2
from harness.ttrpc import framing
from harness.ttrpc.address import open_connection
from harness.ttrpc.errors import Closed, Code, TTRPCError


class Client:
    """One connection to a ttrpc server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._abandoned: set[int] = set()
        self._lock = asyncio.Lock()
        self.closed = False
        self.late_responses = 0  # responses that arrived after their caller gave up
        self._reader_task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def connect(cls, address: str, *, timeout: float = 5.0) -> Client:
        """Dial a unix path (``unix://`` optional) or ``tcp://127.0.0.1:port``."""
        reader, writer = await asyncio.wait_for(open_connection(address), timeout)
        return cls(reader, writer)

    async def call(
        self,
        service: str,
        method: str,
        payload: bytes = b"",
        *,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bytes:
        """One unary call; returns the response payload.

        Raises:
            TTRPCError: the server answered with a non-OK status, or the deadline passed.
            Closed: the connection was lost (before or during the call).
        """
        if self.closed:
            raise Closed()
        req = ttrpc_pb2.Request(
            service=service,
            method=method,
            payload=payload,
            timeout_nano=int(timeout * 1e9) if timeout else 0,
            metadata=[ttrpc_pb2.KeyValue(key=k, value=v) for k, v in (metadata or {}).items()],
        )
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        async with self._lock:
            stream_id = self._next_id
            self._next_id += 2
            self._pending[stream_id] = fut
            try:
                self._writer.write(
                    framing.encode(stream_id, framing.TYPE_REQUEST, req.SerializeToString())
                )
                await self._writer.drain()
            except (ConnectionError, RuntimeError):
                self._fail_all()
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self._abandoned.add(stream_id)
            raise TTRPCError(Code.DEADLINE_EXCEEDED, "context deadline exceeded") from None

    async def _read_loop(self) -> None:
        decoder = framing.Decoder()
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for frame in decoder.feed(data):
                    self._deliver(frame)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._fail_all()

    def _deliver(self, frame: framing.Frame | framing.Oversize) -> None:
        fut = self._pending.pop(frame.stream_id, None)
        if fut is None:
            return  # unknown stream: a duplicate or a response nobody waits for
        if frame.stream_id in self._abandoned:
            self._abandoned.discard(frame.stream_id)
            self.late_responses += 1
        if fut.done():
            return
        if isinstance(frame, framing.Oversize):
            fut.set_exception(TTRPCError(Code.RESOURCE_EXHAUSTED, "message too large"))
            return
        if frame.type != framing.TYPE_RESPONSE:
            fut.set_exception(TTRPCError(Code.INTERNAL, "unknown message type received"))
            return
        try:
            resp = ttrpc_pb2.Response.FromString(frame.payload)
        except Exception as exc:
            fut.set_exception(TTRPCError(Code.INTERNAL, f"unmarshal response: {exc}"))
            return
        if resp.HasField("status") and resp.status.code != 0:
            fut.set_exception(TTRPCError(resp.status.code, resp.status.message))
        else:
            fut.set_result(resp.payload)

    def _fail_all(self) -> None:
        self.closed = True
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(Closed())
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self) -> None:
        """Close the connection; pending calls fail with ``ttrpc: closed``."""
        self._fail_all()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task
