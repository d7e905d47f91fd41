"""Suite-wide fixtures only; everything reusable lives in the reconverge pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.providers.echo import EchoServer


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    """A loopback echo server for this case."""
    with EchoServer() as server:
        yield server
