"""Checkers for the sandbox reconciler (§4.5): quiescence, convergence with a hold window,
leaks, event count, shim Deletes — each answers with a :class:`harness.verdict.Finding`.

Why findings and not pass/fail: the verdict (``harness.verdict``) needs to tell apart "the
truth says the bug happened", "the truth says it did not" and "the truth could not be
read". So every truth source here distinguishes *gone* from *unreadable*:

- a shim with no registry entry, or whose process is gone, is truth (``GONE``);
- a shim that is alive but does not answer ``State`` is ``Unobservable`` — never
  "absent", never "converged";
- a containerd that cannot be asked for its tasks for the whole window gives a finding
  with ``observed=False`` — never "leaked".

The truth comes from the shims themselves (``State`` over each shim's own socket) and from
containerd's direct socket — never through the proxies the reconciler uses. Each checker
is bounded; past its bound it answers with what it saw. Findings carry ``facts`` (a dict)
so a case's symptom predicate can demand the seed's whole signature from data, not text.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from harness import journal
from harness.checks import leaks
from harness.errors import TooSlow
from harness.journal import merge
from harness.protos import events_pb2, shim_task_pb2, task_types_pb2
from harness.providers.containerd_client import ContainerdClient
from harness.reconciler.sandbox.host import ReconcilerHost
from harness.reconciler.sandbox.record import SENTINEL_BINDING
from harness.reconciler.sandbox.timing import Timing
from harness.ttrpc import Client, Code, TTRPCError
from harness.verdict import Finding, Unobservable
from harness.wait import wait_for

_SHIM_STATUS = {v: k for k, v in task_types_pb2.Status.items()}
EXPECTED_VIEW = {"PAUSED": "PAUSED", "RUNNING": "RUNNING", "CREATED": "CREATED"}
#: the shim process is gone, or no shim ever registered for the id (truth, not a failure)
GONE = "GONE"
#: the shim lives but its task map does not hold the id (``State`` answered NotFound)
NO_TASK = "NO_TASK"
#: the task exited and its Delete is still owed (the shim's own status name)
STOPPED = "STOPPED"
#: what a failing truth source raises; a checker turns it into ``observed=False``
PROBE_ERRORS: tuple[type[BaseException], ...] = (
    Unobservable,
    OSError,
    TimeoutError,
    TTRPCError,
    grpc.RpcError,
)
#: a periodic DeadGC slower than this is "off" (a case runs its passes explicitly)
DEADGC_OFF_S = 60.0
#: slack on top of a hold window: two polls of the checker, one snapshot round trip
HOLD_SLACK_S = 0.3


@dataclass
class SandboxFinding(Finding):
    """A :class:`Finding` with the structured facts a symptom predicate reads."""

    facts: dict[str, Any] = field(default_factory=dict)


def unobservable(check: str, error: BaseException | str, **facts: Any) -> SandboxFinding:
    """The finding of a checker whose truth source did not answer."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return SandboxFinding(check, ok=False, symptom=text, observed=False, facts=facts)


# -- truth ------------------------------------------------------------------------------------
def shim_status(run_dir: Path, namespace: str, sid: str, timeout: float = 2.0) -> str:
    """The task status the shim itself reports over its own socket.

    ``GONE`` when no shim registered for the id or its process is gone; ``NO_TASK`` when
    the shim lives but its map no longer holds the id. Raises :class:`Unobservable` when
    the shim is alive but does not answer (a hung, stopped or overloaded daemon): that is
    not an answer about the task, and must never read as "absent".
    """
    entry = leaks.registry_entry(run_dir, namespace, sid)
    pid = int(entry.get("pid") or 0) if entry else 0
    if not entry or not leaks.shim_alive(pid):
        return GONE

    async def ask() -> str:
        client = await Client.connect(f"unix://{entry['socket']}", timeout=timeout)
        try:
            req = shim_task_pb2.StateRequest(id=sid).SerializeToString()
            raw = await client.call("containerd.task.v2.Task", "State", req, timeout=timeout)
            return _SHIM_STATUS.get(shim_task_pb2.StateResponse.FromString(raw).status, "UNKNOWN")
        finally:
            await client.close()

    try:
        return leaks.run_sync(ask)
    except TTRPCError as exc:
        if exc.code == Code.NOT_FOUND:
            return NO_TASK
        error: BaseException = exc
    except PROBE_ERRORS as exc:
        error = exc
    if not leaks.shim_alive(pid):  # it exited while we asked: that is an answer
        return GONE
    raise Unobservable(
        f"shim of {namespace}/{sid} (pid {pid}) is alive but State failed: "
        f"{type(error).__name__}: {error}"
    ) from error


containerd_tasks = leaks.containerd_tasks


def containerd_version(address: Path, timeout: float = 5.0) -> str:
    """The version the running containerd reports (its gRPC Version service).

    Why ask: a verdict saying "on containerd 1.6.20" must be about the binary that ran,
    not the one a document expects.
    """

    async def ask() -> str:
        client = ContainerdClient(str(address), "default")
        try:
            return await client.version(timeout=timeout)
        finally:
            await client.close()

    return leaks.run_sync(ask)


# -- quiescence -----------------------------------------------------------------------------
def quiescent(host: ReconcilerHost, *, since: float, horizon: float, timeout: float) -> dict:
    """Wait until nothing is in flight or queued and ``horizon`` passed since ``since``.

    Returns the reconciler snapshot taken at quiescence. Raises TooSlow (with what was
    busy) when the reconciler never settles within ``timeout``.
    """

    def probe() -> dict:
        snap = host.snapshot()
        if snap["busy"] or time.monotonic() - since < horizon:
            return {"busy": snap["busy"], "waited": round(time.monotonic() - since, 2)} | {
                "ok": False
            }
        return snap | {"ok": True}

    return wait_for(
        probe, timeout=timeout, what="reconciler quiescent", interval=0.1, accept=lambda s: s["ok"]
    )


def hold_window(timing: Timing) -> tuple[float, bool]:
    """How long view = truth must hold after quiescence, and whether to run DeadGC by hand.

    Why this long: the late wrong write seen for real was a DeadGC probe marking a running
    sandbox UNKNOWN. A periodic pass starts within one ``deadgc_tick`` and its probe ends
    within ``reconcile_query``, so tick + query (+ slack for the polls) covers at least one
    complete pass after quiescence; the backoff ticker (``backoff_tick`` ≪ that) and event
    handlers run inside the same window. When the case switched the periodic pass off (it
    would race a one-shot failpoint), one pass is run explicitly at the start of the window
    and the window is the probe's bound.
    """
    if timing.deadgc_tick > DEADGC_OFF_S:
        return timing.reconcile_query + HOLD_SLACK_S, True
    return timing.deadgc_tick + timing.reconcile_query + HOLD_SLACK_S, False


# -- convergence (seed a) ---------------------------------------------------------------------
@dataclass
class _Look:
    """One look at view and truth."""

    t: float
    snap: dict[str, Any]
    truth: dict[str, str]
    diff: list[str]
    error: str = ""  # a truth source that did not answer

    @property
    def busy(self) -> dict[str, Any]:
        return dict(self.snap.get("busy") or {})


def _diff(view: dict[str, Any], truth: str, resumed: bool) -> list[str]:
    out = []
    if truth in (GONE, NO_TASK, STOPPED):
        # a dead shim, or a task that exited (STOPPED, its Delete still owed), under a live
        # record is a divergence, not "nothing to compare": the exit never reached the view
        if view["state"] not in ("EXITED", "UNKNOWN"):
            out.append(f"state: view {view['state']} but the shim is {truth.lower()}")
        return out
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


def _unknown_writes(writes: Iterable[Any]) -> list[str]:
    return [
        f"unknown=true written by {'DeadGC probe' if w.origin == 'probe' else w.origin} "
        f"for {w.sandbox}"
        for w in writes
        if w.fields.get("unknown")
    ]


def _look(host: ReconcilerHost, run_dir: Path, sids: list[str], resumed: bool) -> _Look:
    snap = host.snapshot()
    truth: dict[str, str] = {}
    diff: list[str] = []
    error = ""
    for sid in sids:
        try:
            truth[sid] = shim_status(run_dir, host.namespace, sid)
        except PROBE_ERRORS as exc:
            error = error or f"{type(exc).__name__}: {exc}"
            continue
        view = snap["view"].get(sid)
        if view is None:
            diff.append(f"{sid}: no record in the view (shim {truth[sid]})")
            continue
        diff += [f"{sid}: {d}" for d in _diff(view, truth[sid], resumed)]
    diff += _unknown_writes(snap["writes"])
    return _Look(time.monotonic(), snap, truth, diff, error)


def _describe_write(w: Any, t0: float) -> str:
    fields = {k: ("set" if isinstance(v, int) and v > 10**15 else v) for k, v in w.fields.items()}
    return f"write by {w.origin} at +{w.t - t0:.2f}s into the hold: {w.sandbox} {fields}"


def convergence(
    host: ReconcilerHost,
    run_dir: Path,
    sids: Iterable[str],
    *,
    since: float,
    horizon: float,
    timeout: float,
    resumed: bool = False,
    hold: bool = True,
    check: str = "convergence",
) -> SandboxFinding:
    """View = the shims' truth at quiescence, and it *stays* so through the hold window.

    Phase 1 waits (bounded by ``timeout``) until the reconciler is quiescent and either
    view = truth or ``horizon`` (threshold + DeadGC tick + query after the fault) has
    passed — a buggy variant is judged only once DeadGC had its chance. Phase 2 (when
    view = truth) keeps looking for :func:`hold_window` seconds; any divergence there is
    a failed finding naming the write that caused it. ``facts`` carry, per sandbox, the
    view and the truth at the judged moment, plus every write since ``since``.
    """
    sids = list(sids)
    last: list[_Look] = []

    def probe() -> _Look:
        look = _look(host, run_dir, sids, resumed)
        last[:] = [look]
        return look

    def settled(look: _Look) -> bool:
        if look.busy or look.error:
            return False
        return not look.diff or look.t - since >= horizon

    try:
        look = wait_for(
            probe, timeout=timeout, what="convergence at quiescence", interval=0.1, accept=settled
        )
        judged = "quiescence" if not look.diff else "horizon"
    except TooSlow:
        if not last:
            return unobservable(check, f"no look at the reconciler in {timeout:.0f}s")
        look = last[0]
        if look.error:
            return unobservable(check, f"truth unreadable for {timeout:.0f}s: {look.error}")
        judged = "timeout"
    facts = _facts(look, since, judged)
    if judged == "timeout":
        return SandboxFinding(
            check,
            ok=False,
            symptom=f"never quiescent in {timeout:.0f}s: busy {look.busy}",
            details=look.diff,
            facts=facts,
        )
    if look.diff:
        return SandboxFinding(check, ok=False, symptom=look.diff[0], details=look.diff, facts=facts)
    if hold:
        broken = _hold(host, run_dir, sids, resumed, look, facts)
        if broken is not None:
            return broken
    return SandboxFinding(
        check,
        ok=True,
        symptom="view = truth" + (f", held {facts['hold_s']:.1f}s" if hold else ""),
        details=[
            f"{sid}: view {facts['view'][sid]['state']}, shim {t}" for sid, t in look.truth.items()
        ],
        facts=facts,
    )


def _facts(look: _Look, since: float, judged: str) -> dict[str, Any]:
    view = look.snap.get("view", {})
    writes = list(look.snap.get("writes", []))  # every write: a line may act before ``since``
    return {
        "judged": judged,
        "waited_s": round(look.t - since, 2),
        "busy": look.busy,
        "truth": dict(look.truth),
        "view": {sid: dict(v) for sid, v in view.items()},
        "diff": list(look.diff),
        "writes": [
            {"t": w.t, "origin": w.origin, "sandbox": w.sandbox, "fields": dict(w.fields)}
            for w in writes
        ],
        "origins": sorted({w.origin for w in writes}),
        "generation": look.snap.get("generation", 0),
    }


def _hold(
    host: ReconcilerHost,
    run_dir: Path,
    sids: list[str],
    resumed: bool,
    start: _Look,
    facts: dict[str, Any],
) -> SandboxFinding | None:
    """Keep looking through the hold window; a divergence names the write behind it."""
    window, explicit = hold_window(host.timing)
    facts["hold_s"] = window
    t0 = start.t
    n0 = len(start.snap["writes"])
    if explicit:
        host.deadgc_tick()  # the periodic pass is off in this case: run one now
    end = t0 + window
    grace = host.timing.reconcile_query * 4  # a pass that began late in the window ends

    def probe() -> _Look:
        return _look(host, run_dir, sids, resumed)

    def done(look: _Look) -> bool:
        if look.error:
            return False
        return bool(look.diff) or (look.t >= end and not look.busy)

    try:
        look = wait_for(
            probe,
            timeout=window + grace,
            what="view = truth through the hold",
            interval=0.1,
            accept=done,
        )
    except TooSlow:
        look = probe()
        if look.error:
            return unobservable("convergence", f"truth unreadable in the hold: {look.error}")
        if not look.diff:
            return _busy_after_hold(facts, look, window)
    if not look.diff:
        return None  # held, and quiescent at the end (nothing still on its way)
    new = look.snap["writes"][n0:]
    cause = (
        _describe_write(new[-1], t0)
        if new
        else f"no reconciler write: the shim's truth changed ({start.truth} -> {look.truth})"
    )
    facts |= {"hold_diverged": True, "hold_cause": cause, "hold_diff": list(look.diff)}
    facts["hold_writes"] = [_describe_write(w, t0) for w in new]
    return SandboxFinding(
        "convergence",
        ok=False,
        symptom=f"diverged {look.t - t0:.2f}s into the {window:.1f}s hold: {look.diff[0]}; "
        f"caused by {cause}",
        details=[*look.diff, *facts["hold_writes"]],
        facts=facts,
    )


def _busy_after_hold(facts: dict[str, Any], look: _Look, window: float) -> SandboxFinding:
    facts["busy"] = look.busy
    return SandboxFinding(
        "convergence",
        ok=False,
        symptom=f"work still in flight after the {window:.1f}s hold: {look.busy}",
        facts=facts,
    )


def line_held(
    facts: Mapping[str, Any],
    *,
    line: str,
    origins: Iterable[str],
    after: float = 0.0,
    check: str = "line",
) -> SandboxFinding:
    """The defence line a case exercises wrote the converged state itself.

    Why: the fixed reconciler has several lines (RPC-error reconcile, events, DeadGC); a
    case that only checks the end state passes when *another* line repaired it, and then
    says nothing about the line it is named after. ``origins`` are the write origins of
    that line (``rpc_reconcile``, ``event``, ``deadgc``...); ``after`` is when the fault
    began (a line may write before the failing call returns).
    """
    origins = set(origins)
    seen = [
        w["origin"] for w in facts.get("writes", []) if w["origin"] in origins and w["t"] >= after
    ]
    if seen:
        return SandboxFinding(
            check,
            ok=True,
            symptom=f"{line}: {len(seen)} write(s) by {'/'.join(sorted(set(seen)))}",
            facts={"line": line, "writes": len(seen)},
        )
    seen_all = ", ".join(facts.get("origins", [])) or "none"
    return SandboxFinding(
        check,
        ok=False,
        symptom=f"{line} never wrote (origins seen: {seen_all})",
        facts={"line": line, "writes": 0},
    )


# -- shim-side evidence (seeds b, c) ---------------------------------------------------------------
@dataclass
class Deletes:
    """The shim's own record of the Delete requests (and Shutdown no-ops) for one id."""

    requests: int
    outcomes: list[str]  # reply outcomes in reply order ("ok", "NOT_FOUND: ...")
    overlaps: int
    shutdown_noops: int

    def __str__(self) -> str:
        return (
            f"{self.requests} shim Delete(s) {self.outcomes}, {self.overlaps} overlapping, "
            f"{self.shutdown_noops} Shutdown no-op(s)"
        )


def shim_deletes(run_dir: Path, sid: str, since: float) -> Deletes:
    """Delete requests, replies, overlaps and Shutdown no-ops the shim journaled for ``sid``."""
    shim = [r for r in merge.since(merge.load(run_dir), since) if r.component == "shim"]
    mine = [r for r in shim if r.fields.get("id") == sid]
    return Deletes(
        requests=sum(
            1 for r in mine if r.event == "request" and r.fields.get("method") == "Delete"
        ),
        outcomes=[
            str(r.fields.get("outcome"))
            for r in mine
            if r.event == "reply" and r.fields.get("method") == "Delete"
        ],
        overlaps=sum(1 for r in mine if r.event == "delete_overlap"),
        shutdown_noops=sum(
            1 for r in shim if r.event == "shutdown_noop" and sid in r.fields.get("remaining", [])
        ),
    )


def every_delete_replied(run_dir: Path, sid: str, since: float, timeout: float) -> Deletes:
    """The Deletes once the shim received at least one and journaled a reply to each.

    Bounded: past ``timeout`` it returns what is there (zero Deletes included — a checker
    then says so; it never waits forever for a Delete that will not come).
    """
    try:
        return wait_for(
            lambda: shim_deletes(run_dir, sid, since),
            timeout=timeout,
            what="a journaled reply to every shim Delete",
            accept=lambda d: d.requests >= 1 and len(d.outcomes) == d.requests,
        )
    except TooSlow:
        return shim_deletes(run_dir, sid, since)


def delete_concurrency(
    run_dir: Path, sid: str, *, since: float, exactly_one: bool = False, timeout: float = 2.0
) -> SandboxFinding:
    """At most one shim Delete in flight per id; with ``exactly_one``, exactly one Delete
    (a fixed podsandbox controller sends one per exit — zero would prove nothing)."""
    d = every_delete_replied(run_dir, sid, since, timeout)
    facts = {
        "requests": d.requests,
        "outcomes": d.outcomes,
        "overlaps": d.overlaps,
        "shutdown_noops": d.shutdown_noops,
        "not_found": sum(o.startswith("NOT_FOUND") for o in d.outcomes),
    }
    if d.overlaps:
        return SandboxFinding(
            "delete",
            ok=False,
            symptom=f"{d.requests} shim Deletes for {sid}, {d.overlaps} overlapping",
            details=[str(d)],
            facts=facts,
        )
    if exactly_one and d.requests != 1:
        return SandboxFinding(
            "delete",
            ok=False,
            symptom=f"expected exactly one shim Delete: {d}",
            details=[str(d)],
            facts=facts,
        )
    return SandboxFinding("delete", ok=True, symptom=str(d), facts=facts)


# -- leaks (seeds b, c) ------------------------------------------------------------------------
def _shim_facts(run_dir: Path, namespace: str, sid: str) -> dict[str, Any]:
    entry = leaks.registry_entry(run_dir, namespace, sid)
    pid = int(entry.get("pid") or 0) if entry else 0
    alive = bool(entry) and leaks.shim_alive(pid)
    out: dict[str, Any] = {"shim_alive": alive, "shim_pid": pid, "shim_answers": False}
    out["shim_status"] = shim_status(run_dir, namespace, sid) if alive else GONE
    if alive:
        out["shim_answers"] = leaks.connect_answers(entry.get("socket", ""), sid)
    out["shim_holds_task"] = out["shim_status"] not in (GONE, NO_TASK)
    return out


def leak(
    run_dir: Path,
    *,
    address: Path,
    state_dir: Path,
    namespace: str,
    sids: Iterable[str],
    timeout: float = 1.0,
    check: str = "leak",
) -> SandboxFinding:
    """After removal: no live shim (Connect fails), no containerd task, no bundle.

    Clean as soon as one look finds nothing; a leak only when the last look of the window
    saw it. When the last look could not ask containerd or a live shim, the finding is
    unobservable — "could not ask" is neither clean nor leaked. ``facts`` carry, for the
    first of ``sids``: shim alive / answers / status, containerd task, bundle present.
    """
    sids = list(sids)
    state: dict[str, Any] = {"found": [], "facts": {}, "error": ""}

    def look() -> bool:
        try:
            found = [
                str(f)
                for f in leaks.find_leaks(run_dir, state_dir=state_dir, namespace=namespace)
                if f.container_id in sids
            ]
            tasks = containerd_tasks(address, namespace)
            found += [
                f"containerd task of {namespace}/{t}: {s}" for t, s in tasks.items() if t in sids
            ]
            sid = sids[0]
            facts = _shim_facts(run_dir, namespace, sid) | {
                "containerd_task": tasks.get(sid, ""),
                "bundle": (state_dir / "io.containerd.runtime.v2.task" / namespace / sid).exists(),
            }
        except PROBE_ERRORS as exc:
            state["error"] = f"{type(exc).__name__}: {exc}"
            return False
        state.update(found=found, facts=facts, error="")
        return not found

    clean = False
    try:
        wait_for(look, timeout=timeout, what="no leak", interval=0.05)
        clean = True
    except TooSlow:
        pass
    facts = dict(state["facts"])
    if state["error"]:
        return unobservable(
            check, f"truth unreadable at the end of {timeout:.1f}s: {state['error']}"
        )
    if clean:
        return SandboxFinding(check, ok=True, symptom="no shim, task or bundle left", facts=facts)
    return SandboxFinding(
        check, ok=False, symptom=leak_symptom(facts), details=state["found"], facts=facts
    )


def leak_symptom(facts: Mapping[str, Any]) -> str:
    """One line: is the shim alive (and answering), is the task listed, is the bundle there."""
    shim = "shim gone"
    if facts.get("shim_alive"):
        shim = "shim alive, answers Connect" if facts.get("shim_answers") else "shim alive"
        shim += ", task map " + ("holds the task" if facts.get("shim_holds_task") else "empty")
    return "leaked shim: " + ", ".join(
        [
            shim,
            "containerd task present" if facts.get("containerd_task") else "no task",
            "bundle present" if facts.get("bundle") else "bundle gone",
        ]
    )


def remains(
    run_dir: Path,
    *,
    address: Path,
    state_dir: Path,
    namespace: str,
    sid: str,
    check: str = "remains",
) -> SandboxFinding:
    """What is left of a sandbox that was *not* removed: shim, containerd task, bundle.

    ``ok`` when nothing is left. Unobservable when containerd or a live shim cannot answer.
    """
    try:
        tasks = containerd_tasks(address, namespace)
        facts = _shim_facts(run_dir, namespace, sid) | {
            "containerd_task": tasks.get(sid, ""),
            "bundle": (state_dir / "io.containerd.runtime.v2.task" / namespace / sid).exists(),
        }
    except PROBE_ERRORS as exc:
        return unobservable(check, exc)
    left = bool(facts["shim_alive"] or facts["containerd_task"] or facts["bundle"])
    if not left:
        return SandboxFinding(check, ok=True, symptom="nothing left", facts=facts)
    return SandboxFinding(
        check, ok=False, symptom=leak_symptom(facts).replace("leaked shim", "left"), facts=facts
    )


# -- event count (seed c fixed mode) -------------------------------------------------------------
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

        def publish_and_look() -> str:
            if self._task is not None and self._task.done():
                return "stream ended"  # containerd went away: no marker will ever arrive
            evt = events_pb2.TaskPaused(container_id=marker)
            asyncio.run_coroutine_threadsafe(self._client.publish(topic, evt), self._loop).result(5)
            return "seen" if any(i == marker for _, i in list(self.seen)) else ""

        got = wait_for(publish_and_look, timeout=10, what=f"{topic} delivered", interval=0.05)
        if got == "stream ended":
            raise Unobservable(f"the event subscription ended before {topic} was delivered")

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


def event_count(recorder: EventRecorder, sid: str) -> SandboxFinding:
    """Exactly one TaskExit and one TaskDelete for ``sid`` before a barrier published now.

    Unobservable when the barrier cannot be delivered (containerd not answering).
    """
    try:
        events = recorder.barrier()
    except (TooSlow, *PROBE_ERRORS) as exc:
        return unobservable("event count", exc)
    exits = sum(1 for t, i in events if t == "/tasks/exit" and i == sid)
    deletes = sum(1 for t, i in events if t == "/tasks/delete" and i == sid)
    facts = {"exits": exits, "deletes": deletes}
    if (exits, deletes) == (1, 1):
        return SandboxFinding(
            "event count", ok=True, symptom=f"1 TaskExit, 1 TaskDelete for {sid}", facts=facts
        )
    return SandboxFinding(
        "event count",
        ok=False,
        symptom=f"{exits} TaskExit and {deletes} TaskDelete for {sid} (want 1 and 1)",
        details=[f"{t} {i}" for t, i in events],
        facts=facts,
    )


# -- glue for the cases ----------------------------------------------------------------------------
def note(finding: Finding, what: str = "") -> Finding:
    """Journal a checker's answer so it shows in the timeline."""
    journal.emit(
        "check",
        what or finding.check,
        ok=finding.ok,
        observed=finding.observed,
        symptom=finding.symptom,
    )
    return finding


def by_check(findings: Mapping[str, Finding], name: str) -> dict[str, Any]:
    """The facts of finding ``name`` ({} when absent, unobserved or without facts)."""
    f = findings.get(name)
    if f is None or not f.observed:
        return {}
    return dict(getattr(f, "facts", {}) or {})


def signature(parts: Mapping[str, bool], line: str) -> str | None:
    """``line`` when every named part of a seed's signature holds, else None.

    Why a helper: a symptom predicate must demand the *whole* signature; listing the parts
    by name keeps each predicate readable, and the parts that did not hold are journaled
    (a MISSED case's timeline says which piece of the signature was absent).
    """
    held = bool(parts) and all(parts.values())
    journal.emit("check", "signature", holds=held, missing=missing(parts))
    return line if held else None


def missing(parts: Mapping[str, bool]) -> list[str]:
    """The parts of a signature that did not hold (for evidence)."""
    return [k for k, v in parts.items() if not v]
