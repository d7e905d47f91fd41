"""reconverge: real servers, injected faults, and checks that a reconciler converges.

The pipeline is providers -> reconciler -> checks -> journal -> report. Only the names
re-exported here are public; modules below may change.

Why the re-exports are lazy: the shim stub's ``start``/``delete`` and its daemon import
``harness.shim`` inside containerd's deadlines; pulling asyncio in through this package's
``__init__`` cost every task life cycle ~30 ms per interpreter.
"""

from __future__ import annotations

__all__ = ["ReconvergeError", "TooSlow", "wait_for"]


def __getattr__(name: str) -> object:  # no typing import: ~8 ms on the shim's path
    if name in ("ReconvergeError", "TooSlow"):
        from harness import errors

        return getattr(errors, name)
    if name == "wait_for":
        from harness.wait import wait_for

        return wait_for
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
