"""The reconciler's durations (§4.2), all scaled by one ``time_scale`` with ratios kept.

Upstream runs a 60 s stuck-PAUSING threshold; a suite runs it in a few seconds by scaling
every duration by the same factor, so "threshold = 2 x pause timeout" and "reconcile query
< pause timeout" still hold. RPC-bound timeouts get a floor so a loaded 2-core machine does
not turn a scaled 150 ms Shutdown into a spurious failure (the floor keeps the ordering).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

RPC_FLOOR_S = 0.5  # below this, gRPC over a relay on a busy box starts to flake


@dataclass(frozen=True)
class Timing:
    """Upstream defaults in seconds (CubeSandbox 32a30f5c, containerd CRI events.go)."""

    pause_rpc: float = 30.0
    resume_rpc: float = 30.0
    reconcile_query: float = 5.0
    pausing_stuck_threshold: float = 60.0
    handle_event: float = 10.0
    backoff_init: float = 1.0
    backoff_max: float = 300.0
    backoff_tick: float = 1.0
    deadgc_tick: float = 10.0
    exit_handle: float = 10.0
    shim_shutdown: float = 3.0
    shim_cleanup: float = 5.0
    scale: float = 1.0

    def scaled(self, factor: float) -> Timing:
        """Every duration times ``factor``; RPC deadlines no lower than the floor."""
        if factor <= 0:
            raise ValueError(f"time scale must be > 0, got {factor}")
        rpc = {"reconcile_query", "shim_shutdown", "shim_cleanup", "handle_event", "exit_handle"}
        values = {}
        for f in fields(self):
            if f.name == "scale":
                continue
            v = getattr(self, f.name) * factor
            values[f.name] = max(v, RPC_FLOOR_S) if f.name in rpc else v
        return replace(self, scale=factor, **values)

    @property
    def quiescence_horizon(self) -> float:
        """How long after the last fault the view must have settled (§4.5 quiescence)."""
        return self.pausing_stuck_threshold + self.deadgc_tick + self.reconcile_query
