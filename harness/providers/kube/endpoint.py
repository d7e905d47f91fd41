"""Where the *new* connections of one client path go.

Why a mutable endpoint: a half-open connection is one the network forgot (a NAT or load
balancer dropped its state) while new connections work. toxiproxy's toxics apply to every
connection of a proxy, so "black-hole the old watch connection, let a reconnect through"
is modelled as: add a ``timeout`` toxic to the proxy the watch is on, and move the
endpoint to a fresh proxy — what a load balancer does when it fails over. A client that
reconnects (the fixed watch loop, after its read timeout) lands on the healthy path; one
that waits on its old socket forever (``watch_no_read_timeout``) never does.
"""

from __future__ import annotations

import threading

from harness import journal
from harness.providers.kube.api import Kube
from harness.providers.kube.kubeconfig import Credentials


class Endpoint:
    """A named client path: credentials plus the ``host:port`` new connections dial."""

    def __init__(
        self,
        creds: Credentials,
        address: str | None = None,
        *,
        name: str,
        timeout: tuple[float, float] = (5.0, 15.0),
        user_agent: str = "reconverge",
    ) -> None:
        self.creds = creds
        self.name = name
        self.timeout = timeout
        self.user_agent = user_agent
        self._address = address
        self._lock = threading.Lock()
        self.generation = 0

    @property
    def address(self) -> str:
        """``host:port`` dialed by new connections (the API server itself when unset)."""
        return self._address or self.creds.address

    def client(self, *, timeout: tuple[float, float] | None = None) -> Kube:
        """A new client with its own connection pool, dialing the current address."""
        with self._lock:
            via = self._address
        return Kube(
            self.creds.api_client(via=via),
            timeout=timeout or self.timeout,
            user_agent=self.user_agent,
        )

    def move(self, address: str | None) -> None:
        """Send new connections to ``address`` (existing ones stay where they are)."""
        with self._lock:
            old = self._address
            self._address = address
            self.generation += 1
        journal.emit(
            "kube",
            "endpoint_moved",
            endpoint=self.name,
            old=old or "direct",
            new=address or "direct",
        )
