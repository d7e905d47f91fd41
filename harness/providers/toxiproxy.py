"""toxiproxy: the real server (a local process or a container) and a small client.

The client wraps the ``toxiproxy-python`` package. That package keeps the API host and
port as *class* attributes of ``APIConsumer``, so a process can only talk to one server
at a time; :class:`ToxiproxyClient` sets them under a lock around every call, which
lets several servers (e.g. one per backend in a test) coexist. Toxics the package does
not model (enable/disable by PATCH, toxic removal) go through the same consumer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from toxiproxy import api as tp_api  # type: ignore[import-untyped]
from toxiproxy.server import Toxiproxy as _TPServer  # type: ignore[import-untyped]

from harness import binaries, journal
from harness.errors import ProviderFailed, ReconvergeError
from harness.providers.process import ManagedProcess, free_port, tcp_open
from harness.run import Run

TOXICS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")

_consumer_lock = threading.RLock()


@contextlib.contextmanager
def _using(host: str, port: int) -> Iterator[None]:
    with _consumer_lock:
        old = (tp_api.APIConsumer.host, tp_api.APIConsumer.port)
        tp_api.APIConsumer.host, tp_api.APIConsumer.port = host, port
        try:
            yield
        finally:
            tp_api.APIConsumer.host, tp_api.APIConsumer.port = old


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


@dataclass
class Proxy:
    """One toxiproxy proxy: where clients connect (``listen``) and where it forwards."""

    client: ToxiproxyClient
    name: str
    listen: str
    upstream: str

    @property
    def host(self) -> str:
        return _split(self.listen)[0]

    @property
    def port(self) -> int:
        return _split(self.listen)[1]

    def add_toxic(
        self,
        kind: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Any,
    ) -> str:
        """Add a toxic (one of :data:`TOXICS`) and return its name."""
        if kind not in TOXICS:
            raise ReconvergeError(f"unknown toxic {kind!r}; known: {', '.join(TOXICS)}")
        tname = name or f"{kind}_{stream}"
        with self.client.using():
            proxy = self.client.raw_proxy(self.name)
            proxy.add_toxic(
                type=kind, stream=stream, toxicity=toxicity, name=tname, attributes=attributes
            )
        journal.emit(
            "toxiproxy", "toxic_added", proxy=self.name, toxic=kind, stream=stream, **attributes
        )
        return tname

    def remove_toxic(self, name: str) -> None:
        """Remove one toxic by name."""
        with self.client.using():
            self.client.raw_proxy(self.name).destroy_toxic(name)
        journal.emit("toxiproxy", "toxic_removed", proxy=self.name, toxic=name)

    def toxics(self) -> list[str]:
        """Names of the toxics currently on this proxy."""
        with self.client.using():
            return sorted(self.client.raw_proxy(self.name).toxics())

    def clear(self) -> None:
        """Remove every toxic and re-enable the proxy."""
        for t in self.toxics():
            self.remove_toxic(t)
        self.enable()

    def disable(self) -> None:
        """ "down": close the listener and every open connection (orderly close)."""
        self.client.set_enabled(self.name, False)
        journal.emit("toxiproxy", "down", proxy=self.name)

    def enable(self) -> None:
        """Bring the proxy back up."""
        self.client.set_enabled(self.name, True)
        journal.emit("toxiproxy", "up", proxy=self.name)

    @contextlib.contextmanager
    def down(self) -> Iterator[Proxy]:
        """The proxy is down inside the block and up again after it."""
        self.disable()
        try:
            yield self
        finally:
            self.enable()

    def destroy(self) -> None:
        """Delete the proxy from the server."""
        with self.client.using():
            self.client.raw_proxy(self.name).destroy()
        journal.emit("toxiproxy", "proxy_deleted", proxy=self.name)


class ToxiproxyClient:
    """A toxiproxy API endpoint; the proxies it creates are :class:`Proxy` objects."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server = _TPServer()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def using(self) -> contextlib.AbstractContextManager[None]:
        return _using(self.host, self.port)

    def version(self) -> str:
        """The server's version string."""
        r = requests.get(self.url + "/version", timeout=5)
        r.raise_for_status()
        text = r.text.strip()
        if text.startswith("{"):
            return str(r.json().get("version", text))
        return text

    def create(self, name: str, upstream: str, *, listen: str = "127.0.0.1:0") -> Proxy:
        """Create a proxy; ``listen`` must stay on loopback."""
        host = _split(listen)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]", "::1"):
            raise ReconvergeError(f"toxiproxy proxy {name}: listen {listen} is not loopback")
        with self.using():
            raw = self._server.create(upstream=upstream, name=name, listen=listen, enabled=True)
        proxy = Proxy(self, name, raw.listen, raw.upstream)
        journal.emit(
            "toxiproxy", "proxy_created", proxy=name, listen=proxy.listen, upstream=upstream
        )
        return proxy

    def raw_proxy(self, name: str) -> Any:
        proxy = self._server.get_proxy(name)
        if proxy is None:
            raise ReconvergeError(f"toxiproxy has no proxy named {name!r}")
        return proxy

    def get(self, name: str) -> Proxy:
        """An existing proxy by name (e.g. one the shim stub created)."""
        with self.using():
            raw = self.raw_proxy(name)
        return Proxy(self, name, raw.listen, raw.upstream)

    def names(self) -> list[str]:
        """Names of all proxies."""
        with self.using():
            return sorted(self._server.proxies())

    def set_enabled(self, name: str, enabled: bool) -> None:
        r = requests.patch(f"{self.url}/proxies/{name}", json={"enabled": enabled}, timeout=5)
        if r.status_code == 405:  # servers before 2.6 only know POST
            r = requests.post(f"{self.url}/proxies/{name}", json={"enabled": enabled}, timeout=5)
        r.raise_for_status()

    def reset(self) -> None:
        """Enable every proxy and drop every toxic."""
        requests.post(self.url + "/reset", timeout=5).raise_for_status()

    def delete_all(self) -> None:
        """Remove every proxy (per-test isolation on a shared server)."""
        for n in self.names():
            with self.using(), contextlib.suppress(Exception):
                self.raw_proxy(n).destroy()


class ToxiproxyServer:
    """A running toxiproxy server, whichever backend started it."""

    backend = "process"

    def __init__(self, run: Run, host: str, port: int) -> None:
        self.run = run
        self.client = ToxiproxyClient(host, port)

    @property
    def api(self) -> str:
        return f"{self.client.host}:{self.client.port}"

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class ProcessToxiproxy(ToxiproxyServer):
    """toxiproxy-server from the build cache, as a child process on 127.0.0.1."""

    backend = "process"

    def __init__(self, run: Run, *, port: int | None = None, timeout: float = 10.0) -> None:
        binary = binaries.require("toxiproxy")
        last_error: Exception | None = None
        for _attempt in range(3):
            api_port = port or free_port()
            proc = ManagedProcess(
                run,
                "toxiproxy",
                [binary, "-host", "127.0.0.1", "-port", str(api_port), "-seed", str(run.seed)],
            ).start()
            try:
                proc.wait_ready(
                    lambda p=api_port: tcp_open("127.0.0.1", p) and _version_ok("127.0.0.1", p),
                    timeout=timeout,
                    what="API answering /version",
                )
            except ProviderFailed as exc:
                last_error = exc
                proc.stop()
                if port is not None or "address already in use" not in str(exc):
                    raise
                continue
            super().__init__(run, "127.0.0.1", api_port)
            self.proc = proc
            return
        raise last_error or ProviderFailed("toxiproxy did not start")

    def stop(self) -> None:
        self.proc.stop()


def _version_ok(host: str, port: int) -> bool:
    try:
        return requests.get(f"http://{host}:{port}/version", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def start(run: Run, backend: str = "process") -> ToxiproxyServer:
    """Start toxiproxy on the chosen backend ("process" or "container")."""
    t0 = time.monotonic()
    if backend == "process":
        server: ToxiproxyServer = ProcessToxiproxy(run)
    elif backend == "container":
        from harness.providers.toxiproxy_container import ContainerToxiproxy

        server = ContainerToxiproxy(run)
    else:
        raise ReconvergeError(f"unknown toxiproxy backend {backend!r} (process or container)")
    journal.emit(
        "toxiproxy", "up", backend=backend, api=server.api, seconds=round(time.monotonic() - t0, 3)
    )
    return server
