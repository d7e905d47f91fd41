"""Seed a: CubeSandbox #403 / PR #404 — pause/resume state stuck after ttrpc errors.

Every case runs the reference sandbox reconciler against the real containerd (1.6.20; the
verdict carries the version the running binary reports) and the stub shim, with the
reconciler's gRPC connection through toxiproxy, and injects one fault deterministically at
the phase the seed describes (shim failpoints set from annotations or the shim's control
socket; toxics added once the shim has acted). Every case declares its faults and how often
they fired (``harness.checks.faults``): a fault that never fired makes it INCONCLUSIVE.

PR #404 added four defence lines, each with its own switch (``bugs.py``); the buggy
variants of the seed's cases run the whole pre-fix commit (``cube.pause_resume_pre404``,
the group of the four), and each fixed variant names the line it exercises and checks that
*that* line wrote the converged state (another line repairing it does not count):

| case | line (switch) | its writes |
|---|---|---|
| pause past own deadline | ``cube.pause_no_own_deadline`` | the call ends at the own deadline |
| pause reply after deadline | ``cube.no_reconcile_after_rpc_error`` | ``rpc_reconcile`` |
| resume reply after deadline | ``cube.no_reconcile_after_rpc_error`` | ``rpc_reconcile`` |
| pause connection reset | ``cube.ignores_pause_events`` | ``event`` (event or relist) |
| crash mid-pause | ``cube.deadgc_skips_stuck_pausing`` | ``deadgc`` |

- buggy -> CAUGHT only on the seed's whole signature, judged at quiescence past the horizon
  (stuck threshold + DeadGC tick + query after the fault): e.g. PAUSING with ``pausing_at``
  set while the shim is PAUSED *and* a second pause refused "already paused";
- fixed -> CONVERGED: view = shim truth at quiescence and through the hold window
  (``checks.sandbox.hold_window``), pausing_at cleared, bindings invalidated after a resume,
  no ``unknown`` ever written, and the case's line wrote the converged state.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import pytest

from harness.checks import faults
from harness.checks import sandbox as chk
from harness.journal import merge
from harness.pytest_plugin.sandbox import failpoint_annotations
from harness.reconciler.sandbox import bugs as B
from harness.verdict import Finding
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("containerd", "toxiproxy"), pytest.mark.suite]

SUITE = "seed-a"
REQUEST_TIMEOUT = 0.4  # the caller's deadline (CubeMaster's request)
REPLY_DELAY_MS = 1200  # the shim completes, then answers after the caller gave up
WAIT_S = 10.0  # bound on waiting for a shim to act (a loaded 2-core box is slow)
CALLER_DEADLINE = "caller_deadline"  # effect: the caller saw its deadline pass
RESET = "reset_peer"  # effect: the reconciler's pause failed on the reset connection
CRASH = "kill_after_persist"  # effect: reconciler killed after PausingAt persisted
MID_PAUSE = "deadgc_mid_pause"  # effect: a DeadGC pass ran while the shim paused
QUERY_FAILED = "query_failed"  # effect: the reconcile query after the error failed


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


def _bugs(buggy: bool, switch: str) -> set[str]:
    return {switch} if buggy else set()


def _variant(buggy: bool) -> str:
    return "buggy" if buggy else "fixed"


def _convergence(env, host, *, since: float, resumed: bool = False) -> Finding:
    t = env.timing
    return chk.note(
        chk.convergence(
            host,
            env.run_dir,
            ["sb"],
            since=since,
            horizon=t.quiescence_horizon,
            timeout=t.quiescence_horizon + 15,
            resumed=resumed,
        )
    )


def _line(convergence: Finding, *, switch: str, origins: set[str], after: float) -> Finding:
    """The case's own defence line wrote the converged state (fixed variants)."""
    facts = getattr(convergence, "facts", {})
    return chk.note(chk.line_held(facts, line=switch, origins=origins, after=after))


def _view(findings: Mapping[str, Finding]) -> tuple[dict, str, dict]:
    """(view of sb, shim truth of sb, convergence facts) at the judged moment."""
    c = chk.by_check(findings, "convergence")
    return c.get("view", {}).get("sb", {}), c.get("truth", {}).get("sb", ""), c


def _stuck_pausing(findings: Mapping[str, Finding]) -> dict[str, bool]:
    """§1.5's "PausingAt lingering" signature, judged only once DeadGC had its chance."""
    view, truth, c = _view(findings)
    return {
        "judged past the horizon": c.get("judged") == "horizon",
        "view PAUSING": view.get("state") == "PAUSING",
        "pausing_at set": bool(view.get("pausing_at")),
        "shim PAUSED": truth == "PAUSED",
    }


def _judge(env, verdict, *, case, buggy, fault, findings, failpoints=(), effects=(), symptom):
    fired = faults.fired(env.run_dir, verdict.since, failpoints=failpoints, effects=effects)
    verdict.judge(
        suite=SUITE,
        case=case,
        variant=_variant(buggy),
        fault=fault,
        findings=findings,
        fired=fired,
        symptom=symptom,
        fixed_text="; ".join(f.symptom for f in findings if f.ok) or "view = truth",
        versions={"containerd": chk.containerd_version(env.containerd.address)},
    )


def _await_shim(env, t0: float, event: str, method: str) -> None:
    """Until the shim journaled ``event`` (request/reply) for ``method`` since ``t0``."""
    wait_for(
        lambda: merge.find(env.run_dir, after=t0, component="shim", event=event, method=method),
        timeout=WAIT_S,
        what=f"the shim journaled a {method} {event}",
    )


def _shim_status(env, sid="sb") -> str:
    return chk.shim_status(env.run_dir, env.namespace, sid)


def _await_shim_paused(env) -> None:
    wait_for(lambda: _shim_status(env), timeout=WAIT_S, what="shim paused", accept="PAUSED".__eq__)


def _saw_deadline(err) -> bool:
    """Record the effect of a caller deadline when the error is that (else nothing)."""
    if err is not None and "deadline" in err.message.lower():
        faults.observed(CALLER_DEADLINE, error=err.message)
        return True
    return False


# -- the cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("buggy", variants(B.PAUSE_NO_OWN_DEADLINE))
def test_pause_past_own_deadline(buggy, sandbox_env, verdict):
    """No caller deadline, a shim whose Pause takes 2 x the own deadline (§1.4 vs §1.6).

    Fixed: the RPC ends with DEADLINE_EXCEEDED at ``pause_rpc``, the view is straightened,
    and the late /tasks/paused event converges it. Buggy (7b6ad491): the request runs as
    long as the shim takes — with a hung shim, forever.
    """
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_NO_OWN_DEADLINE))
    own = env.timing.pause_rpc
    slow_ms = int(own * 1000 * 2)
    host.create("sb", failpoint_annotations(Pause_before=f"1*delay({slow_ms})"))
    t0 = time.monotonic()
    err = host.pause("sb", timeout=None)
    took = time.monotonic() - t0
    within = err is not None and "deadline" in err.message.lower() and took < own + 1.0
    facts = {"seconds": round(took, 2), "error": err.message if err else "", "own_s": own}
    deadline = chk.note(
        chk.SandboxFinding(
            "own deadline",
            ok=within,
            symptom=(
                f"Pause ended at the own deadline after {took:.1f}s"
                if within
                else f"Pause RPC ran {took:.1f}s ({'ok' if err is None else err.message}); "
                f"own deadline {own:.1f}s"
            ),
            facts=facts,
        )
    )
    _await_shim(env, t0, "reply", "Pause")  # the slow Pause is over in the shim too
    conv = _convergence(env, host, since=time.monotonic())

    def symptom(f: Mapping[str, Finding]) -> str | None:
        d = chk.by_check(f, "own deadline")
        parts = {
            "the RPC succeeded": d.get("error") == "",
            "it ran as long as the shim": d.get("seconds", 0) >= slow_ms / 1000 - 0.1,
        }
        return chk.signature(
            parts,
            f"Pause ran {d.get('seconds')}s on the caller's context: no own deadline ({own:.1f}s)",
        )

    _judge(
        env,
        verdict,
        case="pause past own deadline",
        buggy=buggy,
        fault=f"shim.Pause.before=1*delay({slow_ms}); no caller deadline",
        findings=[deadline, conv],
        failpoints=["shim.Pause.before"],
        symptom=symptom,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_pause_reply_after_deadline(buggy, sandbox_env, verdict):
    """The shim pauses, then answers after the caller's deadline (§4.4 row 1)."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Pause_after=f"1*delay({REPLY_DELAY_MS})"))
    t0 = time.monotonic()
    _saw_deadline(host.pause("sb", timeout=REQUEST_TIMEOUT))
    since = time.monotonic()
    findings: list[Finding] = []
    if buggy:  # the seed's second symptom: a new pause is refused as "already paused"
        _await_shim_paused(env)
        again = host.pause("sb", timeout=REQUEST_TIMEOUT)
        refused = again is not None and "already paused" in again.message
        findings.append(
            chk.note(
                chk.SandboxFinding(
                    "second pause",
                    ok=not refused,
                    symptom=f"second pause: {again.message if again else 'accepted'}",
                    facts={"refused": refused},
                )
            )
        )
    conv = _convergence(env, host, since=since)
    findings.append(conv)
    if not buggy:
        findings.append(
            _line(conv, switch=B.NO_RECONCILE_AFTER_RPC_ERROR, origins={"rpc_reconcile"}, after=t0)
        )

    def symptom(f: Mapping[str, Finding]) -> str | None:
        parts = _stuck_pausing(f) | {
            "a second pause refused 'already paused'": bool(
                chk.by_check(f, "second pause").get("refused")
            )
        }
        return chk.signature(
            parts, "PAUSING (pausing_at set) while the shim is PAUSED; re-pause 'already paused'"
        )

    _judge(
        env,
        verdict,
        case="pause reply after deadline",
        buggy=buggy,
        fault=f"shim.Pause.after=1*delay({REPLY_DELAY_MS}); caller deadline {REQUEST_TIMEOUT}s",
        findings=findings,
        failpoints=["shim.Pause.after"],
        effects=[CALLER_DEADLINE],
        symptom=symptom,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_pause_connection_reset(buggy, sandbox_env, verdict):
    """The reconciler's connection resets after the shim paused (``ttrpc: closed`` shape)."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Pause_after="1*delay(3000)"))
    t0 = time.monotonic()
    pending = host.start_pause("sb", timeout=None)
    _await_shim_paused(env)
    env.proxy.add_toxic("reset_peer", name="reset", timeout=0)
    try:
        err = pending.result(WAIT_S)
    finally:
        env.proxy.remove_toxic("reset")
    if err is not None:
        faults.observed(RESET, error=err.message)
    conv = _convergence(env, host, since=time.monotonic())
    findings = [conv]
    if not buggy:
        findings.append(_line(conv, switch=B.IGNORES_PAUSE_EVENTS, origins={"event"}, after=t0))

    def symptom(f: Mapping[str, Finding]) -> str | None:
        return chk.signature(_stuck_pausing(f), "PAUSING (pausing_at set) while the shim is PAUSED")

    _judge(
        env,
        verdict,
        case="pause connection reset",
        buggy=buggy,
        fault="reset_peer on reconciler->containerd once the shim paused",
        findings=findings,
        failpoints=["shim.Pause.after"],
        effects=[RESET],
        symptom=symptom,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_resume_reply_after_deadline(buggy, sandbox_env, verdict):
    """The shim resumes, then answers after the caller's deadline (§4.4 row 2)."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Resume_after=f"1*delay({REPLY_DELAY_MS})"))
    paused = host.pause("sb")
    assert paused is None, f"the setup pause failed: {paused}"
    t0 = time.monotonic()
    _saw_deadline(host.resume("sb", timeout=REQUEST_TIMEOUT))
    conv = _convergence(env, host, since=time.monotonic(), resumed=True)
    findings = [conv]
    if not buggy:
        findings.append(
            _line(conv, switch=B.NO_RECONCILE_AFTER_RPC_ERROR, origins={"rpc_reconcile"}, after=t0)
        )

    def symptom(f: Mapping[str, Finding]) -> str | None:
        view, truth, c = _view(f)
        parts = {
            "judged past the horizon": c.get("judged") == "horizon",
            "view PAUSED": view.get("state") == "PAUSED",
            "shim RUNNING": truth == "RUNNING",
            "bindings stale": view.get("runtime_snapshot_id") != chk.SENTINEL_BINDING,
        }
        return chk.signature(parts, "PAUSED while the shim runs; snapshot bindings stale")

    _judge(
        env,
        verdict,
        case="resume reply after deadline",
        buggy=buggy,
        fault=f"shim.Resume.after=1*delay({REPLY_DELAY_MS}); caller deadline {REQUEST_TIMEOUT}s",
        findings=findings,
        failpoints=["shim.Resume.after"],
        effects=[CALLER_DEADLINE],
        symptom=symptom,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_crash_mid_pause(buggy, sandbox_env, verdict):
    """The reconciler dies after persisting PausingAt; the shim pauses while it is down."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Pause_before="1*delay(800)"))
    t0 = time.monotonic()
    host.start_pause("sb", timeout=None)
    _await_shim(env, t0, "request", "Pause")
    host.crash()
    faults.observed(CRASH, generation=host.generation)
    _await_shim_paused(env)
    host.restart()  # reloads PausingAt; the /tasks/paused event is gone for good
    since = time.monotonic()
    conv = _convergence(env, host, since=since)
    findings = [conv]
    if not buggy:
        findings.append(
            _line(conv, switch=B.DEADGC_SKIPS_STUCK_PAUSING, origins={"deadgc"}, after=since)
        )

    def symptom(f: Mapping[str, Finding]) -> str | None:
        parts = _stuck_pausing(f) | {
            "after a restart": chk.by_check(f, "convergence").get("generation", 0) >= 1
        }
        return chk.signature(parts, "PAUSING after restart while the shim is PAUSED (DeadGC skips)")

    _judge(
        env,
        verdict,
        case="crash mid-pause",
        buggy=buggy,
        fault="reconciler kill -9 between PausingAt persist and the paused event",
        findings=findings,
        failpoints=["shim.Pause.before"],
        effects=[CRASH],
        symptom=symptom,
    )


@pytest.mark.parametrize("buggy", variants(B.RESUMED_EVENT_KEEPS_BINDINGS))
def test_resumed_event_only(buggy, sandbox_env, verdict):
    """Only /tasks/resumed can converge: reply late and the status query fails (row 4)."""
    env = sandbox_env
    # DeadGC off: its probe would race the one failing status query this case needs
    timing = dataclasses.replace(env.timing, deadgc_tick=3600.0)
    host = env.reconciler(_bugs(buggy, B.RESUMED_EVENT_KEEPS_BINDINGS), timing=timing)
    host.create("sb", failpoint_annotations(Resume_after=f"1*delay({REPLY_DELAY_MS})"))
    paused = host.pause("sb")
    assert paused is None, f"the setup pause failed: {paused}"
    slow = int(timing.reconcile_query * 1000 * 3)
    env.shim_failpoint("sb", "shim.State.before", f"1*delay({slow})")
    t0 = time.monotonic()
    err = host.resume("sb", timeout=REQUEST_TIMEOUT)
    failed = merge.find(
        env.run_dir, after=t0, component="reconciler", event="reconcile_query_failed"
    )
    if err is not None and failed:
        faults.observed(QUERY_FAILED, error=str(failed[0].fields.get("error")))
    conv = _convergence(env, host, since=time.monotonic(), resumed=True)
    findings = [conv]
    if not buggy:
        findings.append(
            _line(conv, switch=B.RESUMED_EVENT_KEEPS_BINDINGS, origins={"event"}, after=t0)
        )

    def symptom(f: Mapping[str, Finding]) -> str | None:
        view, truth, c = _view(f)
        cleared_by_event = any(
            w["origin"] == "event" and "paused_at" in w["fields"] for w in c.get("writes", [])
        )
        parts = {
            "view RUNNING": view.get("state") == "RUNNING",
            "shim RUNNING": truth == "RUNNING",
            "the resumed event cleared the markers": cleared_by_event,
            "bindings stale": view.get("runtime_snapshot_id") != chk.SENTINEL_BINDING
            and view.get("restore_snapshot_id") != chk.SENTINEL_BINDING,
        }
        return chk.signature(
            parts,
            f"RUNNING via /tasks/resumed; old snapshot id {view.get('runtime_snapshot_id')!r}",
        )

    _judge(
        env,
        verdict,
        case="resumed event only",
        buggy=buggy,
        fault=f"Resume reply late + State 1*delay({slow}) > query timeout",
        findings=findings,
        failpoints=["shim.Resume.after", "shim.State.before"],
        effects=[QUERY_FAILED],
        symptom=symptom,
    )


@pytest.mark.parametrize("buggy", variants(B.DEADGC_PROBES_PAUSING))
def test_deadgc_during_slow_pause(buggy, sandbox_env, verdict):
    """A DeadGC pass while the shim is in a slow freeze (row 5, pre-#108).

    The freeze is slow *inside* the shim's task lock (``shim.Pause.locked``), so a
    concurrent ``State`` waits on that lock like runc's does, past the probe's deadline.
    """
    env = sandbox_env
    timing = dataclasses.replace(env.timing, deadgc_tick=3600.0)  # passes run when we say
    host = env.reconciler(_bugs(buggy, B.DEADGC_PROBES_PAUSING), timing=timing)
    # slow, yet within the pause deadline; longer than the probe's query deadline
    pause_ms = int(max(timing.pause_rpc * 0.6, timing.reconcile_query * 2) * 1000)
    host.create("sb", failpoint_annotations(Pause_locked=f"1*delay({pause_ms})"))
    t0 = time.monotonic()
    pending = host.start_pause("sb", timeout=None)
    _await_shim(env, t0, "request", "Pause")
    tick = time.monotonic()
    host.deadgc_tick()  # while the pause is in progress
    paused = pending.result(WAIT_S)
    replies = merge.find(env.run_dir, after=t0, component="shim", event="reply", method="Pause")
    if replies and replies[0].mono > tick:
        faults.observed(MID_PAUSE, pause_ms=pause_ms)
    findings = [
        chk.note(
            chk.SandboxFinding(
                "slow pause",
                ok=paused is None,
                symptom="the slow pause succeeded" if paused is None else paused.message,
            )
        ),
        _convergence(env, host, since=time.monotonic()),
    ]

    def symptom(f: Mapping[str, Finding]) -> str | None:
        view, truth, c = _view(f)
        by_probe = [
            w for w in c.get("writes", []) if w["origin"] == "probe" and w["fields"].get("unknown")
        ]
        parts = {
            "DeadGC probe wrote unknown=true": bool(by_probe),
            "view UNKNOWN": view.get("state") == "UNKNOWN",
            "the shim paused fine": truth == "PAUSED",
        }
        return chk.signature(parts, "DeadGC probe wrote unknown=true during a healthy pause")

    _judge(
        env,
        verdict,
        case="DeadGC during slow pause",
        buggy=buggy,
        fault=f"shim.Pause.locked=1*delay({pause_ms}); DeadGC pass mid-pause",
        findings=findings,
        failpoints=["shim.Pause.locked"],
        effects=[MID_PAUSE],
        symptom=symptom,
    )
