"""A tiny loopback TCP echo server with a failpoint on every reply.

Why it exists: it is the smallest real upstream that proves the plumbing end to end —
toxics act on its bytes, and its ``echo.reply`` failpoint shows a fault injected inside a
server being journaled next to the toxics. Protocol: each line is echoed back; the line
``BYE`` makes the server close the connection (so close-propagation toxics can be seen).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading

import failpoints
from harness import journal

REPLY = failpoints.point("echo.reply")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.rstrip(b"\n")
            if line == b"BYE":
                return
            action = REPLY.evaluate()
            if action is not None:
                journal.emit("echo", "fault", action=action.kind, arg=action.arg)
                if action.kind == "drop":
                    continue
                if action.kind == "close":
                    return
                if action.kind == "delay":
                    action.apply_sync()
                if action.kind == "error":
                    self.wfile.write(b"ERR " + (action.arg or "").encode() + b"\n")
                    continue
                if action.kind == "duplicate":
                    for _ in range(getattr(action, "count", 1) or 1):
                        self.wfile.write(raw)
            self.wfile.write(raw)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class EchoServer:
    """Echo server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> EchoServer:
        self._thread.start()
        journal.emit("echo", "listening", address=self.address)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def roundtrip(host: str, port: int, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send one line and read one line back (raises ``socket.timeout`` on a stall)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload.rstrip(b"\n") + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        with contextlib.suppress(OSError):
            s.sendall(b"BYE\n")
        return buf
