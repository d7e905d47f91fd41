"""asyncio ttrpc server: each request runs on its own task; responses are written whole.

Why an interceptor hook: the shim stub evaluates failpoints and journals every call around
the real handler, without each handler repeating that code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.protos import ttrpc_pb2
from harness.ttrpc import framing
from harness.ttrpc.address import parse
from harness.ttrpc.errors import Code, TTRPCError


@dataclass
class CallContext:
    """What a handler knows about its call."""

    stream_id: int
    service: str
    method: str
    timeout_nano: int
    metadata: dict[str, str]
    connection: Connection
    received: float = field(default_factory=time.monotonic)
    reply_copies: int = 0  # extra identical responses (a duplicated reply; clients drop them)
    after_reply: Callable[[], None] | None = None  # e.g. exit after answering Shutdown

    @property
    def deadline(self) -> float | None:
        """The caller's deadline on the monotonic clock (None = no deadline)."""
        if self.timeout_nano <= 0:
            return None
        return self.received + self.timeout_nano / 1e9


class NoReply(Exception):
    """Raised by a handler or interceptor to send no response at all (a swallowed reply)."""


Handler = Callable[[bytes, CallContext], Awaitable[bytes]]
Interceptor = Callable[[bytes, CallContext, Handler], Awaitable[bytes]]


class Connection:
    """One accepted connection; ``abort`` drops it the way a crashing peer would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._lock = asyncio.Lock()
        self.closed = False

    async def send(self, stream_id: int, payload: bytes) -> None:
        """Write one response frame (no-op once the connection is closed)."""
        async with self._lock:
            if self.closed:
                return
            try:
                self.writer.write(framing.encode(stream_id, framing.TYPE_RESPONSE, payload))
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                self.closed = True

    def abort(self) -> None:
        """Close now, without an orderly shutdown of pending responses."""
        self.closed = True
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        transport.abort()


def _status_response(code: int, message: str) -> bytes:
    return ttrpc_pb2.Response(
        status=ttrpc_pb2.RpcStatus(code=code, message=message)
    ).SerializeToString()


class Server:
    """Register handlers by (service, method), then serve on a socket, path or TCP port."""

    def __init__(self, interceptor: Interceptor | None = None) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._services: set[str] = set()
        self.interceptor = interceptor
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, service: str, method: str, handler: Handler) -> None:
        """Serve ``/service/method`` with ``handler``."""
        self._handlers[(service, method)] = handler
        self._services.add(service)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve on an already-listening socket (e.g. inherited from the shim's ``start``)."""
        sock.setblocking(False)
        if sock.family == socket.AF_UNIX:
            srv = await asyncio.start_unix_server(self._on_connection, sock=sock)
        else:
            srv = await asyncio.start_server(self._on_connection, sock=sock)
        self._servers.append(srv)

    async def serve(self, address: str) -> str:
        """Listen on ``address`` (unix path or 127.0.0.1:port, port 0 = any); returns it."""
        a = parse(address)
        if a.path is not None:
            srv = await asyncio.start_unix_server(self._on_connection, path=a.path)
            self._servers.append(srv)
            return f"unix://{a.path}"
        srv = await asyncio.start_server(self._on_connection, host=a.host, port=a.port)
        self._servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return f"tcp://{a.host}:{port}"

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        for srv in self._servers:
            srv.close()
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self._servers.clear()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = Connection(reader, writer)
        self._connections.add(conn)
        decoder = framing.Decoder()
        try:
            while not conn.closed:
                data = await reader.read(65536)
                if not data:
                    break
                for frame in decoder.feed(data):
                    self._dispatch(conn, frame)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(conn)
            conn.closed = True
            with contextlib.suppress(Exception):
                writer.close()

    def _dispatch(self, conn: Connection, frame: framing.Frame | framing.Oversize) -> None:
        if isinstance(frame, framing.Oversize):
            msg = f"message length {frame.length} exceed maximum message size of {framing.MAX_DATA}"
            self._spawn(conn.send(frame.stream_id, _status_response(Code.RESOURCE_EXHAUSTED, msg)))
            return
        if frame.type != framing.TYPE_REQUEST:
            return  # forward compatibility: ignore frame types we do not serve
        if frame.stream_id % 2 == 0:
            msg = "StreamID must be odd for client initiated streams"
            self._spawn(conn.send(frame.stream_id, _status_response(Code.INVALID_ARGUMENT, msg)))
            return
        self._spawn(self._handle(conn, frame))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, conn: Connection, frame: framing.Frame) -> None:
        try:
            req = ttrpc_pb2.Request.FromString(frame.payload)
        except Exception as exc:
            await conn.send(
                frame.stream_id,
                _status_response(Code.INVALID_ARGUMENT, f"unmarshal request error: {exc}"),
            )
            return
        handler = self._handlers.get((req.service, req.method))
        if handler is None:
            what = (
                f"method {req.method}"
                if req.service in self._services
                else f"service {req.service}"
            )
            await conn.send(frame.stream_id, _status_response(Code.UNIMPLEMENTED, what))
            return
        ctx = CallContext(
            stream_id=frame.stream_id,
            service=req.service,
            method=req.method,
            timeout_nano=req.timeout_nano,
            metadata={kv.key.lower(): kv.value for kv in req.metadata},
            connection=conn,
        )
        try:
            if self.interceptor is not None:
                payload = await self.interceptor(req.payload, ctx, handler)
            else:
                payload = await handler(req.payload, ctx)
        except NoReply:
            return
        except TTRPCError as exc:
            await conn.send(frame.stream_id, _status_response(int(exc.code), exc.message))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await conn.send(frame.stream_id, _status_response(Code.UNKNOWN, str(exc)))
            return
        response = ttrpc_pb2.Response(payload=payload).SerializeToString()
        for _ in range(1 + ctx.reply_copies):
            await conn.send(frame.stream_id, response)
        if ctx.after_reply is not None:
            ctx.after_reply()
