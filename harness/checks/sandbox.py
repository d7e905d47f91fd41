"""Checkers for the sandbox reconciler (§4.5): quiescence, convergence, leak, event count,
delete concurrency.

Each is bounded. The truth comes from the shims themselves (``State`` over each shim's own
socket) and from containerd's direct socket — never through the proxies the reconciler
uses. Past its bound a checker answers with what it saw ("did not converge in N s" and the
diff), never hangs; ``Outcome.symptom`` is what a verdict table shows.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import journal
from harness.checks import leaks
from harness.errors import TooSlow
from harness.journal import merge
from harness.protos import events_pb2, shim_task_pb2, task_types_pb2
from harness.providers.containerd_client import ContainerdClient
from harness.reconciler.sandbox.host import ReconcilerHost
from harness.reconciler.sandbox.record import SENTINEL_BINDING
from harness.ttrpc import Client
from harness.wait import wait_for

_SHIM_STATUS = {v: k for k, v in task_types_pb2.Status.items()}
EXPECTED_VIEW = {"PAUSED": "PAUSED", "RUNNING": "RUNNING", "CREATED": "CREATED"}


@dataclass
class Outcome:
    """A checker's answer: ok, or the symptom (one line) and the evidence (a diff)."""

    ok: bool
    symptom: str = ""
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([self.symptom or "ok", *(f"  {d}" for d in self.details)])


# -- truth ------------------------------------------------------------------------------------
def shim_status(run_dir: Path, namespace: str, sid: str, timeout: float = 5.0) -> str:
    """The task status the shim itself reports (``ABSENT`` when no live shim has it)."""
    entry = leaks.registry_entry(run_dir, namespace, sid)
    if not entry or not leaks.shim_alive(int(entry.get("pid") or 0)):
        return "ABSENT"

    async def ask() -> str:
        client = await Client.connect(f"unix://{entry['socket']}", timeout=timeout)
        try:
            req = shim_task_pb2.StateRequest(id=sid).SerializeToString()
            raw = await client.call("containerd.task.v2.Task", "State", req, timeout=timeout)
            return _SHIM_STATUS.get(shim_task_pb2.StateResponse.FromString(raw).status, "UNKNOWN")
        except Exception:
            return "ABSENT"
        finally:
            await client.close()

    return asyncio.run(ask())


containerd_tasks = leaks.containerd_tasks


# -- quiescence -----------------------------------------------------------------------------
def quiescent(host: ReconcilerHost, *, since: float, horizon: float, timeout: float) -> dict:
    """Wait until nothing is in flight or queued and ``horizon`` passed since ``since``.

    Returns the reconciler snapshot taken at quiescence. Raises TooSlow (with what was
    busy) when the reconciler never settles within ``timeout``.
    """

    def probe() -> dict | None:
        snap = host.snapshot()
        if snap["busy"] or time.monotonic() - since < horizon:
            return {"busy": snap["busy"], "waited": round(time.monotonic() - since, 2)} | {
                "ok": False
            }
        return snap | {"ok": True}

    return wait_for(
        probe, timeout=timeout, what="reconciler quiescent", interval=0.1, accept=lambda s: s["ok"]
    )


# -- convergence (bug A) ----------------------------------------------------------------------
def _diff(view: dict[str, Any], truth: str, resumed: bool) -> list[str]:
    out = []
    want = EXPECTED_VIEW.get(truth)
    if want is not None and view["state"] != want:
        out.append(f"state: view {view['state']} != shim {truth} (expected {want})")
    if view["pausing_at"]:
        out.append("pausing_at still set")
    if resumed:
        for k in ("runtime_snapshot_id", "restore_snapshot_id"):
            if view[k] != SENTINEL_BINDING:
                out.append(f"{k}: {view[k]!r} != sentinel {SENTINEL_BINDING!r}")
    return out


def _unknown_by_converger(writes: Iterable[Any]) -> list[str]:
    return [
        f"unknown=true written by {w.origin} for {w.sandbox}"
        for w in writes
        if w.fields.get("unknown") and w.origin != "probe"
    ]


def _unknown_by_probe(writes: Iterable[Any]) -> list[str]:
    return [
        f"unknown=true written by DeadGC probe for {w.sandbox}"
        for w in writes
        if w.fields.get("unknown") and w.origin == "probe"
    ]


def convergence(
    host: ReconcilerHost,
    run_dir: Path,
    sids: Iterable[str],
    *,
    since: float,
    horizon: float,
    timeout: float,
    resumed: bool = False,
) -> Outcome:
    """View equals the shims' truth at quiescence; a converged fixed variant returns early.

    Buggy variants must be judged at quiescence: the horizon covers threshold + DeadGC
    tick + query, so "not converged" means DeadGC had its chance too.
    """
    sids = list(sids)
    last: list[str] = []

    def judge(require_horizon: bool) -> bool:
        nonlocal last
        snap = host.snapshot()
        diff: list[str] = []
        for sid in sids:
            view = snap["view"].get(sid)
            truth = shim_status(run_dir, host.namespace, sid)
            if view is None:
                diff.append(f"{sid}: no record in the view (shim {truth})")
                continue
            diff += [f"{sid}: {d}" for d in _diff(view, truth, resumed)]
        diff += _unknown_by_converger(snap["writes"]) + _unknown_by_probe(snap["writes"])
        last = diff
        if snap["busy"]:
            return False
        if not diff:
            return True
        return not require_horizon or time.monotonic() - since >= horizon

    try:
        wait_for(lambda: judge(True), timeout=timeout, what="convergence", interval=0.1)
    except TooSlow:
        return Outcome(False, f"did not converge in {timeout:.0f}s", last)
    if not last:
        return Outcome(True)
    return Outcome(False, last[0], last)


# -- leaks (bugs B, C) ------------------------------------------------------------------------
def leak(
    run_dir: Path,
    *,
    address: Path,
    state_dir: Path,
    namespace: str,
    sids: Iterable[str],
    timeout: float = 1.0,
) -> Outcome:
    """After removal: no live shim (Connect fails), no containerd task, no bundle."""
    sids = set(sids)
    last: list[str] = []

    def clean() -> bool:
        nonlocal last
        found = [
            str(f)
            for f in leaks.find_leaks(run_dir, state_dir=state_dir, namespace=namespace)
            if f.container_id in sids
        ]
        tasks = containerd_tasks(address, namespace)
        found += [f"containerd task of {namespace}/{t}: {s}" for t, s in tasks.items() if t in sids]
        last = found
        return not found

    try:
        wait_for(clean, timeout=timeout, what="no leak", interval=0.05)
    except TooSlow:
        return Outcome(False, _leak_symptom(last), last)
    return Outcome(True, details=["no shim, task or bundle left"])


def _leak_symptom(found: list[str]) -> str:
    """One line: is the shim alive, does containerd still list the task, is the bundle there."""
    shim = next((f for f in found if f.startswith("shim-process")), "")
    parts = [
        ("shim alive, answers Connect" if "answers Connect" in shim else "shim alive")
        if shim
        else "shim gone",
        "containerd task present" if any("containerd task" in f for f in found) else "no task",
        "bundle present" if any(f.startswith("bundle") for f in found) else "bundle gone",
    ]
    return "leaked shim: " + ", ".join(parts)


# -- delete concurrency (bug B) -----------------------------------------------------------------
def delete_concurrency(run_dir: Path, sid: str, *, since: float) -> Outcome:
    """At most one shim Delete in flight per id (from the shims' own request records)."""
    records = merge.since(merge.load(run_dir), since)
    overlaps = [
        r
        for r in records
        if r.component == "shim" and r.event == "delete_overlap" and r.fields.get("id") == sid
    ]
    deletes = [
        r
        for r in records
        if r.component == "shim"
        and r.event == "request"
        and r.fields.get("method") == "Delete"
        and r.fields.get("id") == sid
    ]
    if overlaps:
        return Outcome(
            False,
            f"{len(deletes)} shim Deletes for {sid}, {len(overlaps)} overlapping",
            [
                f"overlap at stream {r.fields.get('stream_id')} with {r.fields.get('overlapping')}"
                for r in overlaps
            ],
        )
    return Outcome(True, details=[f"{len(deletes)} shim Delete(s) for {sid}"])


# -- event count (bug C fixed mode) -------------------------------------------------------------
class EventRecorder:
    """Subscribes (direct socket) before a case acts; ``barrier()`` ends the window.

    Why a barrier: event delivery is asynchronous, so "no more events" can only be known by
    publishing a marker after the removal and counting what arrived before it.
    """

    READY = "/reconverge/recorder-ready"
    BARRIER = "/reconverge/barrier"

    def __init__(self, address: Path, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self.seen: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._task: Any = None
        self._client: ContainerdClient | None = None

    def __enter__(self) -> EventRecorder:
        self._thread.start()

        async def make() -> ContainerdClient:  # grpc.aio channels belong to their loop
            return ContainerdClient(str(self.address), self.namespace)

        self._client = asyncio.run_coroutine_threadsafe(make(), self._loop).result(5)
        self._task = asyncio.run_coroutine_threadsafe(self._consume(), self._loop)
        self._publish_until_seen(self.READY)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _consume(self) -> None:
        assert self._client is not None
        async for env in self._client.subscribe(f"namespace=={self.namespace}"):
            ident = getattr(env.event, "container_id", "") if env.event is not None else ""
            self.seen.append((env.topic, str(ident)))

    def _publish_until_seen(self, topic: str) -> None:
        assert self._client is not None
        marker = f"{topic}-{time.monotonic_ns()}"

        def publish_and_look() -> bool:
            evt = events_pb2.TaskPaused(container_id=marker)
            asyncio.run_coroutine_threadsafe(self._client.publish(topic, evt), self._loop).result(5)
            return any(i == marker for _, i in list(self.seen))

        wait_for(publish_and_look, timeout=10, what=f"{topic} delivered", interval=0.05)

    def barrier(self) -> list[tuple[str, str]]:
        """Events seen before a barrier published now."""
        self._publish_until_seen(self.BARRIER)
        out = []
        for topic, ident in list(self.seen):
            if topic == self.BARRIER:
                break
            if not topic.startswith("/reconverge/"):
                out.append((topic, ident))
        return out


def event_count(events: list[tuple[str, str]], sid: str) -> Outcome:
    """Exactly one TaskExit and one TaskDelete for ``sid`` before the barrier."""
    exits = sum(1 for t, i in events if t == "/tasks/exit" and i == sid)
    deletes = sum(1 for t, i in events if t == "/tasks/delete" and i == sid)
    if (exits, deletes) == (1, 1):
        return Outcome(True, details=[f"1 TaskExit, 1 TaskDelete for {sid}"])
    return Outcome(
        False,
        f"{exits} TaskExit and {deletes} TaskDelete for {sid} (want 1 and 1)",
        [f"{t} {i}" for t, i in events],
    )


def note(outcome: Outcome, what: str) -> Outcome:
    """Journal a checker's answer so it shows in the timeline."""
    journal.emit("check", what, ok=outcome.ok, symptom=outcome.symptom)
    return outcome


# -- verdicts ---------------------------------------------------------------------------------
def decide(
    verdict: Any,
    *,
    suite: str,
    case: str,
    buggy: bool,
    fault: str,
    outcomes: list[Outcome],
    fixed_text: str = "view = truth",
) -> str:
    """Record the case's verdict and fail the test when the expectation does not hold.

    Buggy: CAUGHT when some checker reports the symptom, else MISSED. Fixed: CONVERGED when
    every checker is satisfied, else DIVERGED with the first symptom and its evidence.
    """
    bad = [o for o in outcomes if not o.ok]
    variant = "buggy" if buggy else "fixed"
    if buggy:
        outcome = "CAUGHT" if bad else "MISSED"
        symptom = bad[0].symptom if bad else "every checker passed"
    else:
        outcome = "DIVERGED" if bad else "CONVERGED"
        symptom = bad[0].symptom if bad else fixed_text
    verdict.record(
        suite=suite, case=case, variant=variant, fault=fault, outcome=outcome, symptom=symptom[:160]
    )
    journal.emit("check", "verdict", case=case, variant=variant, outcome=outcome, symptom=symptom)
    if outcome in ("MISSED", "DIVERGED"):
        evidence = "\n".join(str(o) for o in (bad or outcomes))
        raise AssertionError(f"{case} [{variant}]: {outcome}: {symptom}\n{evidence}")
    return symptom
