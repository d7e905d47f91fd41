"""Seed c: containerd #7496 / #8981 — a task Delete that leaves its shim running.

Run against the real containerd 1.6.20, whose runtime only logs a failed Shutdown after a
task Delete and then forgets the shim (§3.4) — the real-version regression. The reference
reconciler either trusts containerd (buggy) or owns the Shutdown (fixed: it checks the
shim's socket after the Delete and shuts a surviving shim down itself, retrying through the
backoff queue, §4.3.8).

- ``runtime.delete_not_retriable``: Shutdown fails once -> CAUGHT: the shim still answers
  ``Connect`` within 1 s of the removal, containerd has no task, the bundle is gone;
  fixed -> no leak and exactly one TaskExit and one TaskDelete before a barrier event.
- ``runtime.delete_timeout_kills_retry`` (#7496 shape): the shim's Delete outlives the exit
  handler's deadline but completes; the retry (held until the shim finished) sees NotFound
  -> buggy marks the sandbox stopped, shim and task record live on; fixed still deletes.
"""

from __future__ import annotations

import time

import pytest

from harness.checks import sandbox as chk
from harness.journal import merge
from harness.reconciler.sandbox import bugs as B
from harness.sandbox_fixtures import failpoint_annotations
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("containerd", "toxiproxy"), pytest.mark.suite]

FIXED_TEXT = "shim exited; no task, no bundle"
SUITE = "seed-c"


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


@pytest.mark.parametrize("buggy", variants(B.DELETE_NOT_RETRIABLE))
def test_shutdown_error_after_delete(buggy, sandbox_env, verdict):
    """``Shutdown=1*error(please retry)`` (TestIssue7496_ShouldRetryShutdown's failpoint)."""
    env = sandbox_env
    host = env.reconciler({B.DELETE_NOT_RETRIABLE} if buggy else set())
    with chk.EventRecorder(env.containerd.address, env.namespace) as recorder:
        host.create("sb", failpoint_annotations(Shutdown="1*error(please retry)"))
        assert host.stop_sandbox("sb", timeout=10) is None
        assert host.remove_sandbox("sb") is None
        removed = time.monotonic()
        leak = env.leak(timeout=1.0)  # the leaked shim must show within 1 s of the delete
        if not leak.ok:
            leak.details.append(f"judged {time.monotonic() - removed:.2f}s after the removal")
        events = recorder.barrier()
    outcomes = [leak, chk.note(chk.event_count(events, "sb"), "event count")]
    chk.decide(
        verdict,
        suite=SUITE,
        case="shutdown error after delete",
        buggy=buggy,
        fault="shim.Shutdown.before=1*error(please retry) on containerd 1.6.20",
        outcomes=outcomes,
        fixed_text=FIXED_TEXT,
    )


@pytest.mark.parametrize("buggy", variants(B.DELETE_TIMEOUT_KILLS_RETRY))
def test_delete_outlives_exit_deadline(buggy, sandbox_env, failpoints, verdict):
    """The first Delete times out in the reconciler but completes in the shim (#7496)."""
    env = sandbox_env
    slow_ms = int(env.timing.exit_handle * 1000 * 2)
    # hold every backoff replay until the shim has finished the timed-out Delete
    failpoints.enable("sandbox.backoff.before_tick", "1*hang")
    host = env.reconciler({B.DELETE_TIMEOUT_KILLS_RETRY} if buggy else set())
    host.create("sb", failpoint_annotations(Delete=f"1*delay({slow_ms})"))
    t0 = time.monotonic()
    stopping = host.call_soon_stop("sb", timeout=slow_ms / 1000 + 10)
    wait_for(
        lambda: merge.find(env.run_dir, after=t0, component="shim", event="delete_phase2", id="sb"),
        timeout=slow_ms / 1000 + 5,
        what="the shim finished the timed-out Delete",
    )
    failpoints.release("sandbox.backoff.before_tick")
    assert stopping.result(30) is None
    assert host.remove_sandbox("sb") is None
    chk.decide(
        verdict,
        suite=SUITE,
        case="delete outlives exit deadline",
        buggy=buggy,
        fault=f"shim.Delete.before=1*delay({slow_ms}) > exit handler deadline",
        outcomes=[env.leak(timeout=2.0)],
        fixed_text=FIXED_TEXT,
    )
