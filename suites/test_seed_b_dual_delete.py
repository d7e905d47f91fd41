"""Seed b: containerd #12344 / PR #12400 — two concurrent task Deletes leak the shim.

The reference reconciler plays CRI's podsandbox controller against the real containerd
1.6.20 (whose TaskManager.Delete has no per-id guard either, §2.4) and the stub shim,
whose Delete is two-phase with a failpoint between the phases and whose Shutdown is a
no-op while its map still holds the container — the exact window of §2.3. Both variants
run with containerd owning Shutdown (``runtime.delete_not_retriable``: CRI before #14020),
so only the podsandbox fix decides whether the shim leaks.

- ``cri.podsandbox_dual_exit_handlers``: watcher and event subscriber both delete ->
  CAUGHT by the leak checker (shim alive, no task, no bundle) and the delete-concurrency
  checker (overlapping shim Deletes); fixed -> one Delete, the shim exits.
- ``cri.watcher_exit_event_without_id``: the watcher's Delete fails once; its backoff
  replay finds no sandbox -> CAUGHT (task and shim remain, nothing queued); fixed -> the
  replay deletes.
"""

from __future__ import annotations

import time

import pytest

from harness.checks import sandbox as chk
from harness.reconciler.sandbox import bugs as B
from harness.sandbox_fixtures import failpoint_annotations

pytestmark = [pytest.mark.needs("containerd", "toxiproxy"), pytest.mark.suite]

FIXED_TEXT = "shim exited; no task, no bundle"
SUITE = "seed-b"
BASELINE = {B.DELETE_NOT_RETRIABLE}  # CRI on containerd before #14020
GAP_FRACTION = 0.6  # of the exit handler's deadline: both Deletes land in the gap, and
# the owner's Delete still finishes within its deadline (else the retry would overlap too)


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


@pytest.mark.parametrize("buggy", variants(B.DUAL_EXIT_HANDLERS))
def test_dual_exit_handlers(buggy, sandbox_env, verdict):
    """The sandbox task exits; watcher (and, buggy, subscriber) handle the exit."""
    env = sandbox_env
    host = env.reconciler(BASELINE | ({B.DUAL_EXIT_HANDLERS} if buggy else set()))
    gap_ms = int(env.timing.exit_handle * 1000 * GAP_FRACTION)
    host.create("sb", failpoint_annotations(Delete_between=f"delay({gap_ms})"))
    since = time.monotonic()
    err = host.stop_sandbox("sb", timeout=10)
    assert err is None, err
    assert host.remove_sandbox("sb") is None
    outcomes = [
        env.leak(timeout=2.0),
        chk.note(chk.delete_concurrency(env.run_dir, "sb", since=since), "delete"),
    ]
    chk.decide(
        verdict,
        suite=SUITE,
        case="dual exit handlers",
        buggy=buggy,
        fault=f"kill sandbox task; shim.Delete.between=delay({gap_ms})",
        outcomes=outcomes,
        fixed_text=FIXED_TEXT,
    )


@pytest.mark.parametrize("buggy", variants(B.WATCHER_EXIT_WITHOUT_ID))
def test_watcher_exit_backoff_replay(buggy, sandbox_env, verdict):
    """The watcher's Delete fails once; only the backoff replay can finish the job."""
    env = sandbox_env
    host = env.reconciler(BASELINE | ({B.WATCHER_EXIT_WITHOUT_ID} if buggy else set()))
    host.create("sb", failpoint_annotations(Delete="1*error(retry)"))
    since = time.monotonic()
    stop_bound = env.timing.backoff_init * 20 + env.timing.exit_handle
    stopped = host.stop_sandbox("sb", timeout=stop_bound)
    outcomes: list[chk.Outcome] = []
    if stopped is not None:  # the symptom of the buggy replay: the exit is never handled
        chk.quiescent(host, since=since, horizon=0.0, timeout=10)
        outcomes.append(chk.Outcome(False, f"stop failed, nothing queued: {stopped.message}"))
    else:
        assert host.remove_sandbox("sb") is None
    outcomes.append(env.leak(timeout=2.0))
    chk.decide(
        verdict,
        suite=SUITE,
        case="watcher exit backoff replay",
        buggy=buggy,
        fault="kill sandbox task; shim.Delete.before=1*error(retry)",
        outcomes=outcomes,
        fixed_text=FIXED_TEXT,
    )
