"""Benchmark: what a disabled failpoint costs a hot path, next to a bare no-op call.

Run as ``.venv/bin/python ci/bench.d/failpoints.py``. Prints one line and exits 1 when a
disabled ``evaluate()`` costs more than 0.5 µs, or when it allocates. The bare call is
measured in the same run so the figure can be read on any machine as a ratio.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from a bare checkout

import failpoints  # after the path set-up above

TARGET_US = 0.5
CALLS = 1_000_000
REPEATS = 7


def _noop() -> None:
    return None


def best_us(stmt: str, namespace: dict[str, object]) -> float:
    """Best of REPEATS runs of CALLS executions, in µs per call (the least disturbed run)."""
    return min(timeit.repeat(stmt, globals=namespace, number=CALLS, repeat=REPEATS)) / CALLS * 1e6


def allocated_blocks_during(fn: object, calls: int) -> int:
    """Net allocated blocks after ``calls`` calls (0 when nothing is allocated or kept)."""
    assert callable(fn)
    for _ in range(1000):  # warm up caches the first calls may fill
        fn()
    before = sys.getallocatedblocks()
    for _ in range(calls):
        fn()
    return sys.getallocatedblocks() - before


def main() -> int:
    """Measure, print one line, return the exit code."""
    registry = failpoints.Registry()
    fp = registry.point("bench.disabled")
    registry.enable("bench.disabled", "1*off")
    registry.disable("bench.disabled")  # disabled after having been enabled: the real case
    namespace: dict[str, object] = {"fp": fp, "noop": _noop}

    evaluate_us = best_us("fp.evaluate()", namespace)
    bare_us = best_us("noop()", namespace)
    leaked = allocated_blocks_during(fp.evaluate, 100_000)
    print(
        f"failpoints: disabled evaluate {evaluate_us:.3f} µs/call; bare call {bare_us:.3f} µs/call;"
        f" ratio {evaluate_us / bare_us:.2f} (target ≤{TARGET_US} µs); "
        f"net allocations {leaked}"
    )
    if evaluate_us > TARGET_US:
        print(f"failpoints: disabled evaluate is over {TARGET_US} µs", file=sys.stderr)
        return 1
    if leaked > 50:  # the interpreter itself may move a few blocks; a per-call leak is 1e5
        print("failpoints: the disabled path allocates", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
