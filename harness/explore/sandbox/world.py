"""The real servers of one explore run, and one fresh ``SandboxEnv`` per schedule.

Why not pytest: the explorer decides at run time how many schedules it runs and which ones
again (confirmation replays, shrinking), so it owns its loop. It still uses the suites'
pieces, not copies: the run and its janitor (``harness.run``), ``Containerd`` with its gRPC
relay, the toxiproxy server and the plugin's ``ProxyFactory``, and the suites'
``SandboxEnv`` (built here exactly as the ``sandbox_env`` fixture builds it: own namespace
claimed for leak attribution, own proxy, own store, FIFO baseline).
"""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import journal
from harness import run as run_mod
from harness.checks import leaks
from harness.providers.containerd import Containerd
from harness.pytest_plugin import ProxyFactory
from harness.pytest_plugin.sandbox import SandboxEnv
from harness.reconciler.sandbox import Timing
from harness.run import Run

#: the suites' default (``--reconverge-sandbox-time-scale``): the fault menu is tuned to it
TIME_SCALE = 0.05
#: one socat relay of containerd's ttrpc socket per containerd (the events leg's upstream)
_TTRPC_RELAYS: weakref.WeakKeyDictionary[Containerd, str] = weakref.WeakKeyDictionary()


def ttrpc_relay(containerd: Containerd) -> str:
    """containerd's ttrpc socket on 127.0.0.1, started once per containerd: the upstream of
    a namespace's events-leg proxy. socat dials the socket per connection, so the relay
    outlives a containerd restart (the next Forward reaches the new process)."""
    addr = _TTRPC_RELAYS.get(containerd)
    if addr is None:
        addr = _TTRPC_RELAYS[containerd] = containerd.tcp_relay("ttrpc")
    return addr


class SandboxWorld:
    """containerd 1.6.20 + the stub shim + toxiproxy for the life of one explore run."""

    def __init__(self, *, seed: int, time_scale: float = TIME_SCALE, run: Run | None = None):
        self.seed = seed
        self.timing = Timing().scaled(time_scale)
        self.run = run
        self._own_run = run is None
        self.containerd: Containerd | None = None
        self.server: Any = None
        self.relay = ""
        self.count = 0

    def __enter__(self) -> SandboxWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> SandboxWorld:
        from harness.providers import toxiproxy

        if self.run is None:
            self.run = run_mod.start(purpose="explore", seed=self.seed, proc="explore")
        self.server = toxiproxy.start(self.run)
        self.containerd = Containerd(self.run).start()
        self.relay = self.containerd.tcp_relay("grpc")
        return self

    def close(self) -> None:
        if self._own_run and self.run is not None:
            self.run.close()
            self.run = None

    @contextlib.contextmanager
    def env(self, label: str) -> Iterator[SandboxEnv]:
        """A ``SandboxEnv`` of its own for one schedule (namespace, proxy, store)."""
        assert self.run is not None and self.containerd is not None
        self.count += 1
        digest = hashlib.sha1(f"{self.seed}:{label}:{self.count}".encode()).hexdigest()[:6]
        ns = f"ex-{self.count}-{digest}"
        factory = ProxyFactory(self.server, ns)
        proxy = factory.create("containerd", self.relay)
        store = self.run.path("sandbox", mkdir=True) / f"{ns}.sqlite"
        env = SandboxEnv(self.containerd, self.run, ns, proxy, self.timing, Path(store))
        leaks.claim_namespace(self.run.dir, ns, f"explore {label}")
        pid = self.containerd.proc.pid if self.containerd.proc else None
        env.fifo_baseline = leaks.fifo_fds(pid) if pid else []
        journal.emit("explore", "env", namespace=ns, label=label)
        try:
            yield env
        finally:
            for host in reversed(env.hosts):
                with contextlib.suppress(Exception):
                    host.close()
            factory.cleanup()
