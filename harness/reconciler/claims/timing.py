"""Every duration of the claim operator, scaled by one ``time_scale`` factor.

Why one factor: the upstream operator's durations are tuned relative to each other (a
2 s requeue against a 10 s cache wait against a 15 s retry); suites need them about ten
times shorter to stay well under two minutes, and a factor keeps the ratios, so a
scaled run exercises the same orderings as the real one. Request timeouts are not scaled:
they bound how long a harness call may block, not operator behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

#: The default for suites: 2 s requeue -> 0.2 s, 10 s cache wait -> 1 s.
SUITE_SCALE = 0.1


@dataclass(frozen=True)
class Timing:
    """Upstream values (seconds) at ``scale=1``; use :meth:`scaled` for a faster copy."""

    scale: float = 1.0
    # matrixorigin/controller-runtime: retry = requeue after 2 s (defaultRequeueAfter)
    requeue: float = 2.0
    # cnclaim Sync: a NotFound pod is trusted only waitCacheTimeout after status.boundTime
    wait_cache: float = 10.0
    # cnclaim: ErrReSync after a failed store patch / kruise lifecycle check
    retry_patch: float = 15.0
    # cnclaim Bind: ErrReSync("wait pod to bound", 5 s) when no idle pod exists
    bind_wait: float = 5.0
    # cnclaim migrate: wait after status.store.boundTime before reclaiming the source
    propagation_delay: float = 15.0
    # cnclaim migrate: requeue while the source drains
    migrate_requeue: float = 10.0
    # cnclaimset: requeue when the cached and uncached claim counts disagree
    claimset_resync: float = 1.0
    # watch loop (§5.2): client read timeout on a stream (an idle stream is re-opened)
    watch_read_timeout: float = 30.0
    # watch loop: server-side timeoutSeconds of one watch request
    watch_server_timeout: float = 300.0
    # informer resync: an idle stream's read timeout re-lists (instead of re-watching)
    # once the last list is this old — what heals an event the watch lost
    resync_period: float = 10.0
    # watch loop: pause before re-watching after a broken stream (kopf uses 0.1 s)
    reconnect_backoff: float = 1.0
    # workqueue: first error backoff (client-go: 5 ms, doubling, capped)
    error_backoff: float = 0.005
    error_backoff_max: float = 30.0
    # not scaled: bound on any single API request (connect, read)
    request_connect: float = 5.0
    request_read: float = 15.0

    _UNSCALED = ("scale", "request_connect", "request_read")

    def scaled(self, factor: float) -> Timing:
        """A copy with every operator duration multiplied by ``factor``."""
        if factor <= 0:
            raise ValueError("time_scale must be positive")
        changes = {
            f.name: getattr(self, f.name) * factor
            for f in fields(self)
            if f.name not in self._UNSCALED
        }
        return replace(self, scale=self.scale * factor, **changes)

    @property
    def server_timeout_seconds(self) -> int:
        """``timeoutSeconds`` must be a whole number of seconds, at least 1."""
        return max(1, math.ceil(self.watch_server_timeout))

    @property
    def request_timeout(self) -> tuple[float, float]:
        return (self.request_connect, self.request_read)
