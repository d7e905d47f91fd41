"""Parsing the addresses ttrpc peers use: unix paths (with or without ``unix://``) and TCP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    """Either a unix socket path or a loopback TCP endpoint."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.path else f"tcp://{self.host}:{self.port}"


def parse(address: str) -> Address:
    """``unix:///p``, ``unix:/p``, ``/p`` -> unix; ``tcp://h:p`` or ``h:p`` -> TCP."""
    if address.startswith("unix://"):
        return Address(path=address[len("unix://") :])
    if address.startswith("unix:"):
        return Address(path=address[len("unix:") :])
    if address.startswith("/"):
        return Address(path=address)
    rest = address.removeprefix("tcp://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a ttrpc address: {address!r}")
    return Address(host=host.strip("[]") or "127.0.0.1", port=int(port))


async def open_connection(
    address: str,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial ``address`` (raises OSError when nothing listens)."""
    a = parse(address)
    if a.path is not None:
        return await asyncio.open_unix_connection(a.path)
    return await asyncio.open_connection(a.host, a.port)
