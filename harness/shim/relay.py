"""containerd → shim through toxiproxy: the shim's advertised socket becomes a relay.

When a container carries ``io.reconverge.stub.toxiproxy=<api host:port>`` (or containerd's
environment has ``RECONVERGE_SHIM_TOXIPROXY``), the daemon serves ttrpc on 127.0.0.1 (the
*direct* endpoint), asks that toxiproxy for a proxy ``shim-<key>`` in front of it, and
serves the unix socket containerd dials (the one ``start`` printed) as a byte relay to the
proxy. A toxic on that proxy (reset_peer, timeout, latency…) then acts on containerd's own
connection to the shim. The daemon deletes the proxy when it exits; ``delete`` does it for
a daemon that died (panic failpoint, SIGKILL).

Why in the daemon and not a socat: the socket path is fixed before containerd connects and
must stay the shim's (leak detection and ``ctr shim`` dial it); and the shim's imports stay
lean — toxiproxy's HTTP API is two calls of ``http.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Mapping

from harness import journal

ANNOTATION_TOXIPROXY = "io.reconverge.stub.toxiproxy"
# shim -> containerd: publish events to this ttrpc address (e.g. a proxy in front of
# ``Containerd.tcp_relay("ttrpc")``) instead of TTRPC_ADDRESS; per container, since one
# containerd serves every test
ANNOTATION_EVENTS_ADDRESS = "io.reconverge.stub.events_address"


# the same for every shim of a containerd that has this in its environment (hand
# reproduction with ``reconverge up``); the annotation wins, ``off`` opts a container out
ENV_TOXIPROXY = "RECONVERGE_SHIM_TOXIPROXY"


def toxiproxy_api(annotations: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The toxiproxy API (host:port) this shim's containerd leg goes through, or ``""``.

    Why the annotation is the primary switch: tests share one containerd, whose environment
    every shim inherits, so only an annotation can relay one container and not the others.
    """
    api = annotations.get(ANNOTATION_TOXIPROXY) or environ.get(ENV_TOXIPROXY, "")
    return "" if api.strip().lower() == "off" else api.strip()


class RelayError(Exception):
    """The toxiproxy API refused or could not be reached."""


def _api(api: str, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    import http.client  # only relayed shims pay for it

    host, _, port = api.rpartition(":")
    conn = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError as exc:
        raise RelayError(f"toxiproxy API {api}: {exc}") from exc
    finally:
        conn.close()


def create_proxy(api: str, name: str, upstream: str) -> str:
    """A proxy ``name`` → ``upstream`` on a free loopback port; returns its listen address."""
    _api(api, "DELETE", f"/proxies/{name}")  # a previous shim's leftover, if any
    status, raw = _api(
        api,
        "POST",
        "/proxies",
        {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": True},
    )
    if status not in (200, 201):
        raise RelayError(f"toxiproxy API {api}: create {name}: HTTP {status} {raw[:200]!r}")
    return str(json.loads(raw)["listen"])


def delete_proxy(api: str, name: str) -> None:
    with contextlib.suppress(RelayError):
        _api(api, "DELETE", f"/proxies/{name}")


class UnixRelay:
    """Accept on the inherited unix socket; pump each connection to ``target`` (TCP)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.host, self.port = host, int(port)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def serve(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._server = await asyncio.start_unix_server(self._on_connection, sock=sock)

    async def _on_connection(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = self.connections
        try:
            ur, uw = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            journal.emit("shim", "relay_dial_failed", error=str(exc))
            w.close()
            return
        journal.emit("shim", "relay_open", conn=n)
        a = asyncio.ensure_future(_pump(r, uw))
        b = asyncio.ensure_future(_pump(ur, w))
        self._tasks |= {a, b}
        await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        # one side ended (e.g. toxiproxy reset the connection): end the other side too, so
        # containerd sees its connection to the shim close, as with a real network fault
        for t in (a, b):
            t.cancel()
        for writer in (w, uw):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._tasks -= {a, b}
        journal.emit("shim", "relay_closed", conn=n)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
