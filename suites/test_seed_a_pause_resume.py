"""Seed a: CubeSandbox #403 / PR #404 — pause/resume state stuck after ttrpc errors.

Every case runs the reference sandbox reconciler against the real containerd 1.6.20 and
the stub shim, with the reconciler's gRPC connection through toxiproxy, and injects one
fault deterministically at the phase the seed describes (shim failpoints set from
annotations or the shim's control socket; toxics added once the shim has acted):

- buggy (``cube.pause_resume_pre404`` etc.) -> CAUGHT: the convergence checker, judged at
  quiescence (stuck threshold + DeadGC tick + query after the fault), shows the seed's
  symptom (PAUSING while the shim is paused, PAUSED while it runs, stale bindings, unknown);
- fixed -> CONVERGED: view = shim truth, pausing_at cleared, bindings invalidated after a
  resume, and no converger ever wrote ``unknown``.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from harness.checks import sandbox as chk
from harness.journal import merge
from harness.reconciler.sandbox import bugs as B
from harness.sandbox_fixtures import failpoint_annotations
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("containerd", "toxiproxy"), pytest.mark.suite]

SUITE = "seed-a"
REQUEST_TIMEOUT = 0.4  # the caller's deadline (CubeMaster's request)
REPLY_DELAY_MS = 1200  # the shim completes, then answers after the caller gave up


def variants(switch: str) -> list:
    return [pytest.param(False, id="fixed"), pytest.param(True, id=f"buggy-{switch}")]


def _bugs(buggy: bool, switch: str) -> set[str]:
    return {switch} if buggy else set()


def _judge(env, host, verdict, *, case, buggy, fault, since, resumed=False) -> None:
    t = env.timing
    outcome = chk.convergence(
        host,
        env.run_dir,
        ["sb"],
        since=since,
        horizon=t.quiescence_horizon,
        timeout=t.quiescence_horizon + 15,
        resumed=resumed,
    )
    chk.decide(
        verdict,
        suite=SUITE,
        case=case,
        buggy=buggy,
        fault=fault,
        outcomes=[chk.note(outcome, "convergence")],
    )


def _await_shim_request(env, t0: float, method: str) -> None:
    """Until the shim journaled a ``method`` request (the fault's phase has begun)."""
    wait_for(
        lambda: merge.find(env.run_dir, after=t0, component="shim", event="request", method=method),
        timeout=5,
        what=f"the shim received {method}",
    )


def _shim_status(env, sid="sb") -> str:
    return chk.shim_status(env.run_dir, env.namespace, sid)


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_pause_reply_after_deadline(buggy, sandbox_env, verdict):
    """The shim pauses, then answers after the caller's deadline (§4.4 row 1)."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Pause_after=f"1*delay({REPLY_DELAY_MS})"))
    err = host.pause("sb", timeout=REQUEST_TIMEOUT)
    assert err is not None and "deadline" in err.message.lower(), err
    since = time.monotonic()
    if buggy:  # the seed's second symptom: a new pause is refused as "already paused"
        wait_for(lambda: _shim_status(env), timeout=5, what="shim paused", accept="PAUSED".__eq__)
        again = host.pause("sb", timeout=REQUEST_TIMEOUT)
        assert again is not None and "already paused" in again.message, again
    _judge(
        env,
        host,
        verdict,
        case="pause reply after deadline",
        buggy=buggy,
        fault=f"shim.Pause.after=1*delay({REPLY_DELAY_MS}); caller deadline {REQUEST_TIMEOUT}s",
        since=since,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_pause_connection_reset(buggy, sandbox_env, verdict):
    """The reconciler's connection resets after the shim paused (``ttrpc: closed`` shape)."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Pause_after="1*delay(3000)"))
    pending = host.start_pause("sb", timeout=None)
    wait_for(lambda: _shim_status(env), timeout=5, what="shim paused", accept="PAUSED".__eq__)
    env.proxy.add_toxic("reset_peer", name="reset", timeout=0)
    err = pending.result(10)
    assert err is not None, "pause survived a reset connection"
    env.proxy.remove_toxic("reset")
    since = time.monotonic()
    _judge(
        env,
        host,
        verdict,
        case="pause connection reset",
        buggy=buggy,
        fault="reset_peer on reconciler->containerd once the shim paused",
        since=since,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_resume_reply_after_deadline(buggy, sandbox_env, verdict):
    """The shim resumes, then answers after the caller's deadline (§4.4 row 2)."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Resume_after=f"1*delay({REPLY_DELAY_MS})"))
    assert host.pause("sb") is None
    err = host.resume("sb", timeout=REQUEST_TIMEOUT)
    assert err is not None and "deadline" in err.message.lower(), err
    since = time.monotonic()
    _judge(
        env,
        host,
        verdict,
        case="resume reply after deadline",
        buggy=buggy,
        fault=f"shim.Resume.after=1*delay({REPLY_DELAY_MS}); caller deadline {REQUEST_TIMEOUT}s",
        since=since,
        resumed=True,
    )


@pytest.mark.parametrize("buggy", variants(B.PAUSE_RESUME_PRE404))
def test_crash_mid_pause(buggy, sandbox_env, verdict):
    """The reconciler dies after persisting PausingAt; the shim pauses while it is down."""
    env = sandbox_env
    host = env.reconciler(_bugs(buggy, B.PAUSE_RESUME_PRE404))
    host.create("sb", failpoint_annotations(Pause_before="1*delay(800)"))
    t0 = time.monotonic()
    host.start_pause("sb", timeout=None)
    _await_shim_request(env, t0, "Pause")
    host.crash()
    wait_for(lambda: _shim_status(env), timeout=5, what="shim paused", accept="PAUSED".__eq__)
    host.restart()  # reloads PausingAt; the /tasks/paused event is gone for good
    since = time.monotonic()
    _judge(
        env,
        host,
        verdict,
        case="crash mid-pause",
        buggy=buggy,
        fault="reconciler kill -9 between PausingAt persist and the paused event",
        since=since,
    )


@pytest.mark.parametrize("buggy", variants(B.RESUMED_EVENT_KEEPS_BINDINGS))
def test_resumed_event_only(buggy, sandbox_env, verdict):
    """Only /tasks/resumed can converge: reply late and the status query fails (row 4)."""
    env = sandbox_env
    # DeadGC off: its probe would race the one failing status query this case needs
    timing = dataclasses.replace(env.timing, deadgc_tick=3600.0)
    host = env.reconciler(_bugs(buggy, B.RESUMED_EVENT_KEEPS_BINDINGS), timing=timing)
    host.create("sb", failpoint_annotations(Resume_after=f"1*delay({REPLY_DELAY_MS})"))
    assert host.pause("sb") is None
    slow = int(timing.reconcile_query * 1000 * 3)
    env.shim_failpoint("sb", "shim.State.before", f"1*delay({slow})")
    t0 = time.monotonic()
    err = host.resume("sb", timeout=REQUEST_TIMEOUT)
    assert err is not None, "resume succeeded despite the late reply"
    wait_for(
        lambda: merge.find(
            env.run_dir, after=t0, component="reconciler", event="reconcile_query_failed"
        ),
        timeout=5,
        what="the reconcile query failed (only the event path is left)",
    )
    _judge(
        env,
        host,
        verdict,
        case="resumed event only",
        buggy=buggy,
        fault=f"Resume reply late + State 1*delay({slow}) > query timeout",
        since=time.monotonic(),
        resumed=True,
    )


@pytest.mark.parametrize("buggy", variants(B.DEADGC_PROBES_PAUSING))
def test_deadgc_during_slow_pause(buggy, sandbox_env, verdict):
    """A DeadGC pass while the shim holds its lock in a slow pause (row 5, pre-#108)."""
    env = sandbox_env
    timing = dataclasses.replace(env.timing, deadgc_tick=3600.0)  # passes run when we say
    host = env.reconciler(_bugs(buggy, B.DEADGC_PROBES_PAUSING), timing=timing)
    pause_ms = int(timing.pause_rpc * 1000 * 0.6)  # slow, yet within the pause deadline
    host.create("sb", failpoint_annotations(Pause_before=f"1*delay({pause_ms})"))
    slow = int(timing.reconcile_query * 1000 * 2)
    env.shim_failpoint("sb", "shim.State.before", f"1*delay({slow})")
    t0 = time.monotonic()
    pending = host.start_pause("sb", timeout=None)
    _await_shim_request(env, t0, "Pause")
    host.deadgc_tick()  # while the pause is in progress
    assert pending.result(10) is None, "the slow pause itself must succeed"
    _judge(
        env,
        host,
        verdict,
        case="DeadGC during slow pause",
        buggy=buggy,
        fault=f"Pause.before=1*delay({pause_ms}), State 1*delay({slow}); DeadGC pass mid-pause",
        since=time.monotonic(),
    )
