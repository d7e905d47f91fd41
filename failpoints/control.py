"""The HTTP control endpoint: gofail's verbs on a unix socket or a loopback port.

Why HTTP and gofail's verbs: ``curl`` and existing gofail tooling can drive a Python process
the same way they drive etcd. Why only unix sockets and loopback: the endpoint has no
authentication and can make a process panic, so it must not be reachable from elsewhere;
the socket file is made 0600 before the server listens.

Routes (``<name>`` is a point name; ``failpoints`` is reserved for the bulk PUT)::

    GET    /                   "name=spec" lines for every known point (disabled: "name=")
    GET    /<name>             the spec (404 if unknown or disabled)
    GET    /<name>/count       the trigger count
    GET    /<name>/status      JSON {name, spec, remaining, hits, triggers}
    PUT    /<name>             body = spec; enable (204), 400 with the one-line syntax error
    PUT    /failpoints         body = "a=spec;b=spec"; enable all or nothing (204 / 400)
    DELETE /<name>             disable (204; 404 if unknown)
    POST   /<name>/release     end the hangs fired so far (204; 404 if unknown)
    GET    /~<command>         run a command the process registered, no arguments (200 JSON)
    POST   /~<command>         body = a JSON object of arguments (may be empty); 200 JSON

Commands (``serve(..., commands={"info": fn})``) let the process under test offer a few
verbs of its own on the socket the tests already know (the shim stub: ``info``,
``late_exit``); ``~`` cannot start a point name, so they never shadow a point. A command
is ``fn(args: dict) -> dict``; a ``ValueError`` it raises is a 400 with its message, an
unknown command a 404.

Errors are one line of text, or JSON ``{"error": ..., "text", "column", "reason", "name"}``
when the request accepts ``application/json`` (that is how ``ControlClient`` rebuilds a
``FailpointSyntaxError``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import http.server
import json
import os
import socket
import socketserver
import stat
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FailpointSyntaxError
from .grammar import check_name, parse_assignments
from .registry import Registry, default

__all__ = ["Command", "ControlServer", "Endpoint", "parse_address", "serve"]

#: A command the serving process offers: JSON arguments in, a JSON object out.
Command = Callable[[dict[str, Any]], dict[str, Any]]
#: The first character of a command path segment (never valid in a point name).
COMMAND_MARK = "~"

_MAX_BODY = 64 * 1024
_LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed control address: a unix socket path, or a loopback host and port."""

    path: str | None = None
    host: str | None = None
    port: int = 0

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(address: str) -> Endpoint:
    """Parse ``unix:/abs/path`` or ``127.0.0.1:PORT`` / ``localhost:PORT`` / ``[::1]:PORT``.

    Raises:
        ValueError: a relative or too long socket path, a bad port, or a host that is not
            loopback (the endpoint has no authentication).
    """
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        if path.startswith("//"):  # unix:///abs/path, as gRPC and containerd write it
            path = "/" + path.lstrip("/")
        if not os.path.isabs(path):
            raise ValueError(f"control socket path must be absolute: {address!r}")
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise ValueError(
                f"control socket path is {len(os.fsencode(path))} bytes; "
                f"unix sockets allow {_UNIX_PATH_MAX}: {path}"
            )
        return Endpoint(path=path)
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise ValueError(f"control address must be unix:/path or 127.0.0.1:PORT, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host not in _LOOPBACK:
        raise ValueError(
            f"refusing failpoint control on {host!r}: only 127.0.0.1, localhost and ::1 "
            "(the endpoint has no authentication)"
        )
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"bad port {port_text!r} in control address {address!r}")
    return Endpoint(host=_LOOPBACK[host], port=int(port_text))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "failpoints"
    # buffered: status line, headers and body leave in one send; two small writes on a
    # keep-alive TCP connection would meet Nagle and delayed ACKs (40 ms a request)
    wbufsize = 64 * 1024
    server: _Serving

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test harness's stderr is for findings, not access logs."""

    # -- routing ----------------------------------------------------------------------------

    def _route(self) -> tuple[str, str]:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        name, _, verb = path.lstrip("/").partition("/")
        return name, verb

    def _command(self, name: str, body: str) -> None:
        """Run command ``name`` (without its mark) with the JSON object ``body``."""
        command = self.server.commands.get(name)
        if command is None:
            return self._error(404, f"unknown command {name!r}")
        try:
            args = json.loads(body) if body.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("command arguments must be a JSON object")
            result = command(args)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            return self._error(400, str(exc))
        return self._send(200, json.dumps(result), "application/json")

    def do_GET(self) -> None:
        registry = self.server.registry
        name, verb = self._route()
        if name.startswith(COMMAND_MARK) and not verb:
            return self._command(name[1:], "")
        if not name and not verb:
            lines = "".join(f"{n}={st.spec or ''}\n" for n, st in registry.list_points().items())
            return self._send(200, lines)
        try:
            status = registry.status(name)
        except KeyError:
            return self._error(404, f"unknown failpoint {name!r}")
        if verb == "":
            if status.spec is None:
                return self._error(404, f"failpoint {name!r} is disabled")
            return self._send(200, status.spec)
        if verb == "count":
            return self._send(200, str(status.triggers))
        if verb == "status":
            body = json.dumps(dataclasses.asdict(status))
            return self._send(200, body, "application/json")
        return self._error(404, f"no such resource {self.path!r}")

    def do_PUT(self) -> None:
        registry = self.server.registry
        name, verb = self._route()
        body = self._body()
        if body is None:
            return None
        if verb:
            return self._error(404, f"no such resource {self.path!r}")
        try:
            if name == "failpoints":
                registry.enable_many(parse_assignments(body))
            else:
                check_name(name)
                registry.enable(name, body)
        except FailpointSyntaxError as exc:
            return self._syntax_error(exc)
        except ValueError as exc:
            return self._error(400, str(exc))
        return self._send(204)

    def do_DELETE(self) -> None:
        self._discard_body()
        name, verb = self._route()
        if verb:
            return self._error(404, f"no such resource {self.path!r}")
        if not self.server.registry.disable(name):
            return self._error(404, f"unknown failpoint {name!r}")
        return self._send(204)

    def do_POST(self) -> None:
        name, verb = self._route()
        if name.startswith(COMMAND_MARK) and not verb:
            body = self._body()
            return None if body is None else self._command(name[1:], body)
        self._discard_body()
        if verb != "release":
            return self._error(404, f"no such resource {self.path!r}")
        if not self.server.registry.release(name):
            return self._error(404, f"unknown failpoint {name!r}")
        return self._send(204)

    # -- plumbing ---------------------------------------------------------------------------

    def _body(self) -> str | None:
        """The request body as text, or ``None`` after sending an error."""
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.close_connection = True
            self._error(411, "a body with Content-Length is required")
            return None
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            self._error(413, f"body must be 0 to {_MAX_BODY} bytes")
            return None
        raw = self.rfile.read(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._error(400, "body is not UTF-8")
            return None

    def _discard_body(self) -> None:
        """Read and drop a body nobody asked for, so the connection stays usable."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= _MAX_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _wants_json(self) -> bool:
        return "application/json" in self.headers.get("Accept", "")

    def _syntax_error(self, exc: FailpointSyntaxError) -> None:
        if self._wants_json():
            fields = {"text": exc.text, "column": exc.column, "reason": exc.reason}
            body = json.dumps({"error": str(exc), **fields, "name": exc.name})
            return self._send(400, body, "application/json")
        return self._send(400, str(exc) + "\n")

    def _error(self, code: int, message: str) -> None:
        if self._wants_json():
            return self._send(code, json.dumps({"error": message}), "application/json")
        return self._send(code, message + "\n")

    def _send(self, code: int, body: str = "", content_type: str = "text/plain") -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        if code != 204:
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if code != 204:
            self.wfile.write(data)


class _Serving:
    """What the handler needs from its server (both server classes below provide it)."""

    registry: Registry
    commands: Mapping[str, Command]


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, host: str, port: int, registry: Registry, commands: Mapping[str, Command]
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.registry = registry
        self.commands = commands
        super().__init__((host, port), _Handler)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, registry: Registry, commands: Mapping[str, Command]) -> None:
        self.registry = registry
        self.commands = commands
        super().__init__(path, _Handler)

    def server_bind(self) -> None:
        super().server_bind()
        # before listen(): nobody can connect while the mode is still the umask's
        os.chmod(self.server_address, 0o600)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to touch anything else.

    Raises:
        FileExistsError: ``path`` exists and is not a socket.
        OSError: (EADDRINUSE) a live server answers on ``path``.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket", path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
    raise OSError(errno.EADDRINUSE, "a server already listens on this socket", path)


class ControlServer:
    """A running control endpoint (daemon thread). Use ``serve()``; ``close()`` when done."""

    def __init__(
        self,
        address: str,
        registry: Registry | None = None,
        commands: Mapping[str, Command] | None = None,
    ) -> None:
        endpoint = parse_address(address)
        reg = registry or default
        cmds = dict(commands or {})
        self._server: _TCPServer | _UnixServer
        self._inode: int | None = None
        if endpoint.path is not None:
            _clear_stale_socket(endpoint.path)
            self._server = _UnixServer(endpoint.path, reg, cmds)
            self._inode = os.stat(endpoint.path).st_ino
            self._endpoint = endpoint
        else:
            assert endpoint.host is not None
            self._server = _TCPServer(endpoint.host, endpoint.port, reg, cmds)
            self._endpoint = Endpoint(host=endpoint.host, port=self._server.server_address[1])
        self._closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # how long close() may wait for the loop to notice; 20 idle wake-ups a second
            kwargs={"poll_interval": 0.05},
            name=f"failpoints-control {self._endpoint}",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> str:
        """Where it listens, with the real port: ``unix:/path`` or ``127.0.0.1:43121``."""
        return str(self._endpoint)

    def close(self) -> None:
        """Stop serving, close the socket and remove the socket file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
        path = self._endpoint.path
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == self._inode:  # not someone else's by now
                    os.unlink(path)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ControlServer {self.address}>"


def serve(
    address: str,
    *,
    registry: Registry | None = None,
    commands: Mapping[str, Command] | None = None,
) -> ControlServer:
    """Start the control endpoint on ``address`` in a daemon thread and return it.

    ``commands``: verbs of the serving process, served at ``/~<name>`` (module docstring).

    Raises:
        ValueError: see ``parse_address``.
        OSError: the address is in use, or the socket cannot be created.
    """
    return ControlServer(address, registry, commands)
