"""Seed b: containerd #12344 / PR #12400 — two concurrent task Deletes leak the shim.

The reference reconciler plays CRI's podsandbox controller against the real containerd
1.6.20 (whose TaskManager.Delete has no per-id guard either, §2.4; the verdict carries the
version the running binary reports) and the stub shim, whose Delete is two-phase with a
failpoint between the phases and whose Shutdown is a no-op while its map still holds the
container — the exact window of §2.3. Both variants run with containerd owning Shutdown
(``runtime.delete_not_retriable``: CRI before #14020), so only the podsandbox fix decides
whether the shim leaks.

The verdict comes from the real state only (the shim's own journal and socket, containerd's
task list, the bundle directory); what the reconciler answered to Stop/Remove is journaled
as context, never evidence.

- ``cri.podsandbox_dual_exit_handlers``: watcher and event subscriber both delete ->
  CAUGHT only on the whole §2.3 signature (two overlapping shim Deletes, one NotFound, a
  Shutdown no-op while the map held the sandbox, then the shim alive with an empty task
  map, no containerd task, no bundle); fixed -> exactly one shim Delete, the shim exits.
- ``cri.watcher_exit_event_without_id``: the watcher's Delete fails once; its backoff
  replay finds no sandbox -> CAUGHT when, with nothing queued, the task, its bundle and
  the shim (still holding the task) all remain; fixed -> the replay deletes: one failed
  and one successful shim Delete, nothing left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from harness import journal
from harness.checks import faults
from harness.checks import sandbox as chk
from harness.errors import TooSlow
from harness.journal import merge
from harness.pytest_plugin.sandbox import failpoint_annotations
from harness.reconciler.sandbox import bugs as B
from harness.verdict import Finding

pytestmark = [pytest.mark.needs("containerd", "toxiproxy"), pytest.mark.suite]

SUITE = "seed-b"
BASELINE = {B.DELETE_NOT_RETRIABLE}  # CRI on containerd before #14020
GAP_FRACTION = 0.6  # of the exit handler's deadline: both Deletes land in the gap, and
# the owner's Delete still finishes within its deadline (else the retry would overlap too)
DELETE_BETWEEN = "shim.Delete.between"
DELETE_BEFORE = "shim.Delete.before"


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


def _context(what: str, err) -> None:
    """The reconciler's own answer: a timeline entry, not evidence."""
    journal.emit("check", "orchestrator", call=what, error=err.message if err else "")


def _judge(env, verdict, *, case, buggy, fault, findings, failpoints, symptom) -> None:
    verdict.judge(
        suite=SUITE,
        case=case,
        variant="buggy" if buggy else "fixed",
        fault=fault,
        findings=findings,
        fired=faults.fired(env.run_dir, verdict.since, failpoints=failpoints),
        symptom=symptom,
        fixed_text="; ".join(f.symptom for f in findings if f.ok),
        versions={"containerd": chk.containerd_version(env.containerd.address)},
    )


def dual_delete_signature(f: Mapping[str, Finding]) -> str | None:
    """§2.3's whole end state; overlapping Deletes alone, or a leftover of another shape
    (a task or bundle left behind), is a different bug and must not read as this one."""
    d, lk = chk.by_check(f, "delete"), chk.by_check(f, "leak")
    parts = {
        "two shim Deletes": d.get("requests") == 2,
        "the Deletes overlapped": d.get("overlaps", 0) >= 1,
        "one Delete got NotFound": d.get("not_found") == 1,
        "a Shutdown no-op while the map held the sandbox": d.get("shutdown_noops", 0) >= 1,
        "shim alive": bool(lk.get("shim_alive")),
        "shim's task map empty": lk.get("shim_status") == chk.NO_TASK,
        "containerd has no task": lk.get("containerd_task") == "",
        "bundle gone": lk.get("bundle") is False,
    }
    return chk.signature(
        parts,
        "leaked shim: alive, empty task map, no task, bundle gone; "
        "2 overlapping Deletes, one NotFound, Shutdown no-op",
    )


@pytest.mark.parametrize("buggy", variants(B.DUAL_EXIT_HANDLERS))
def test_dual_exit_handlers(buggy, sandbox_env, verdict):
    """The sandbox task exits; watcher (and, buggy, subscriber) handle the exit."""
    env = sandbox_env
    host = env.reconciler(BASELINE | ({B.DUAL_EXIT_HANDLERS} if buggy else set()))
    gap_ms = int(env.timing.exit_handle * 1000 * GAP_FRACTION)
    host.create("sb", failpoint_annotations(Delete_between=f"delay({gap_ms})"))
    since = time.monotonic()
    _context("StopPodSandbox", host.stop_sandbox("sb", timeout=10))
    _context("RemovePodSandbox", host.remove_sandbox("sb"))
    deletes = chk.note(
        chk.delete_concurrency(
            env.run_dir, "sb", since=since, exactly_one=not buggy, timeout=2 + gap_ms / 1000
        )
    )
    leak = env.leak(timeout=2.0)

    _judge(
        env,
        verdict,
        case="dual exit handlers",
        buggy=buggy,
        fault=f"kill sandbox task; shim.Delete.between=delay({gap_ms})",
        findings=[deletes, leak],
        failpoints=[DELETE_BETWEEN],
        symptom=dual_delete_signature,
    )


@pytest.mark.parametrize("buggy", variants(B.WATCHER_EXIT_WITHOUT_ID))
def test_watcher_exit_backoff_replay(buggy, sandbox_env, verdict):
    """The watcher's Delete fails once; only the backoff replay can finish the job."""
    env = sandbox_env
    host = env.reconciler(BASELINE | ({B.WATCHER_EXIT_WITHOUT_ID} if buggy else set()))
    host.create("sb", failpoint_annotations(Delete="1*error(retry)"))
    since = time.monotonic()
    t = env.timing
    stop_bound = t.backoff_init * 20 + t.exit_handle
    _context("StopPodSandbox", host.stop_sandbox("sb", timeout=stop_bound))
    _context("RemovePodSandbox", host.remove_sandbox("sb"))
    try:  # the replay has run (or been dropped): nothing in flight, nothing queued
        chk.quiescent(host, since=since, horizon=t.backoff_init * 2, timeout=10)
        queue = chk.SandboxFinding("queue", ok=True, symptom="nothing queued", facts={"busy": {}})
    except TooSlow as exc:
        queue = chk.SandboxFinding(
            "queue", ok=False, symptom=f"never quiescent: {exc}", facts={"busy": "yes"}
        )
    chk.note(queue)
    replays = merge.find(
        env.run_dir, after=since, component="reconciler", event="exit_without_sandbox"
    )
    ds = chk.every_delete_replied(env.run_dir, "sb", since, timeout=2.0)
    ok_deletes = sum(o == "ok" for o in ds.outcomes)
    deletes = chk.note(
        chk.SandboxFinding(
            "delete",
            # the injected error, then the replay's Delete: one of each
            ok=ds.requests == 2 and ok_deletes == 1 and ds.outcomes[-1:] == ["ok"],
            symptom=str(ds),
            facts={"requests": ds.requests, "ok": ok_deletes, "replay_found_nothing": len(replays)},
        )
    )
    leak = env.leak(timeout=2.0)

    def symptom(f: Mapping[str, Finding]) -> str | None:
        q, d, lk = chk.by_check(f, "queue"), chk.by_check(f, "delete"), chk.by_check(f, "leak")
        parts = {
            "nothing queued": q.get("busy") == {},
            "the replay found no sandbox": d.get("replay_found_nothing", 0) >= 1,
            "no successful shim Delete": d.get("ok") == 0,
            "containerd still lists the task": bool(lk.get("containerd_task")),
            "shim alive, holding the task": bool(lk.get("shim_holds_task")),
            "bundle present": lk.get("bundle") is True,
        }
        return chk.signature(
            parts, "stop never completes: task, bundle and shim remain; nothing queued"
        )

    _judge(
        env,
        verdict,
        case="watcher exit backoff replay",
        buggy=buggy,
        fault="kill sandbox task; shim.Delete.before=1*error(retry)",
        findings=[queue, deletes, leak],
        failpoints=[DELETE_BEFORE],
        symptom=symptom,
    )
