"""A small stdlib client for the control endpoint of another process.

Why it exists: a test drives the failpoints of a shim or a server it started, over the
unix socket or loopback port that process serves (``failpoints.serve``), with the same
errors it would get in-process: ``FailpointSyntaxError`` for a bad spec, ``KeyError`` for
an unknown point.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any

from .control import parse_address
from .errors import FailpointSyntaxError
from .grammar import Terms, check_name, format_assignments
from .point import Status

__all__ = ["ControlClient"]


class _UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a unix stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """Talk to ``failpoints.serve(address)``; one short connection per call."""

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        self._endpoint = parse_address(address)
        if self._endpoint.path is None and self._endpoint.port == 0:
            raise ValueError(f"control address needs a real port, got {address!r}")
        self._timeout = timeout

    @property
    def address(self) -> str:
        """The endpoint this client talks to."""
        return str(self._endpoint)

    def set(self, name: str, spec: str | Terms) -> None:
        """Enable ``spec`` on ``name`` (PUT /<name>).

        Raises:
            FailpointSyntaxError: the server rejected the spec.
        """
        self._call("PUT", _path(name), name, str(spec))

    def set_many(self, specs: dict[str, str | Terms] | str) -> None:
        """Enable several points at once, all or nothing (PUT /failpoints)."""
        body = specs if isinstance(specs, str) else format_assignments(specs)
        self._call("PUT", "/failpoints", None, body)

    def get(self, name: str) -> str:
        """The spec of ``name``.

        Raises:
            KeyError: ``name`` is unknown or disabled.
        """
        return self._call("GET", _path(name), name)

    def count(self, name: str) -> int:
        """How many times a term of ``name`` fired since it was enabled."""
        return int(self._call("GET", _path(name, "count"), name))

    def status(self, name: str) -> Status:
        """Spec, remaining state, hits and triggers of ``name``."""
        data = json.loads(self._call("GET", _path(name, "status"), name))
        return Status(**data)

    def clear(self, name: str) -> None:
        """Disable ``name`` (DELETE /<name>)."""
        self._call("DELETE", _path(name), name)

    def release(self, name: str) -> None:
        """End the hangs of ``name`` fired so far."""
        self._call("POST", _path(name, "release"), name, "")

    def command(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a command the serving process offers (``POST /~<name>``, JSON both ways).

        Raises:
            KeyError: the process offers no such command.
            ValueError: the process refused the arguments (its message).
        """
        path = "/~" + urllib.parse.quote(name, safe="")
        body = json.dumps(args or {})
        result = json.loads(self._call("POST", path, None, body) or "{}")
        if not isinstance(result, dict):
            raise RuntimeError(f"failpoint control POST {path}: not a JSON object")
        return result

    def list(self) -> dict[str, str | None]:
        """Every known point and its spec (``None`` while disabled)."""
        result: dict[str, str | None] = {}
        for line in self._call("GET", "/", None).splitlines():
            name, _, spec = line.partition("=")
            result[name] = spec or None
        return result

    def _call(self, method: str, path: str, name: str | None, body: str | None = None) -> str:
        conn = self._connection()
        try:
            headers = {"Accept": "application/json, text/plain"}
            data = None
            if body is not None:
                data = body.encode("utf-8")
                headers["Content-Type"] = "text/plain; charset=utf-8"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
        finally:
            conn.close()
        if response.status < 300:
            return text
        raise _error(response.status, text, name, f"{method} {path}")

    def _connection(self) -> http.client.HTTPConnection:
        endpoint = self._endpoint
        if endpoint.path is not None:
            return _UnixConnection(endpoint.path, self._timeout)
        assert endpoint.host is not None
        return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=self._timeout)


def _path(name: str, verb: str = "") -> str:
    check_name(name)
    quoted = "/" + urllib.parse.quote(name, safe="")
    return f"{quoted}/{verb}" if verb else quoted


def _error(status: int, text: str, name: str | None, request: str) -> Exception:
    """The exception matching an error response."""
    try:
        data = json.loads(text)
    except ValueError:
        data = {"error": text.strip()}
    message = str(data.get("error", text.strip()))
    if status == 400 and "column" in data:
        return FailpointSyntaxError(
            data["text"], int(data["column"]), data["reason"], name=data.get("name")
        )
    if status == 400:
        return ValueError(message)
    if status == 404:
        return KeyError(name if name is not None else message)
    return RuntimeError(f"failpoint control {request}: HTTP {status}: {message}")
