"""Mutation meta-test of the seed a/b/c suites: can their verdicts lie?

A verdict is only worth something if it changes when the thing it judges changes. Each test
here runs a real sandbox case (the suite's own function, on the real containerd and the stub
shim, with its own checks and symptom predicate) with one thing broken, and asserts the
verdict moved:

- every switch: the **fixed** case with only that fix removed (``RECONVERGE_SANDBOX_BUGS``
  turns that one switch on; the case still expects the fixed outcome) must be DIVERGED —
  not CONVERGED, and not INCONCLUSIVE either (its fault fired and the truth was seen: the
  checks themselves must notice). For seed a's four defence lines this is what the line
  check of each case is for: another line repairing the view must not hide a dead one;
- a case whose failpoint name is misspelled must end INCONCLUSIVE (its fault never fired);
- a case whose containerd is killed during the leak check must end INCONCLUSIVE — the
  buggy variant not CAUGHT, the fixed one neither CONVERGED nor DIVERGED; likewise a
  buggy case whose shim is alive but frozen (SIGSTOP) while the convergence check reads
  it — an unreadable shim is not a stuck one.

The case functions are called directly with this test's fixtures and a verdict recorder of
their own (these runs add no rows to the verdict table). Parameter ids start with
``buggy-``: each of these reconcilers *is* buggy, so the teardown leak check journals what
they leak instead of failing on it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.checks import leaks
from harness.checks import sandbox as chk
from harness.reconciler.sandbox import bugs as B
from harness.suite_reuse import load_suite, run_case
from harness.verdict import Outcome
from harness.wait import wait_for

pytestmark = pytest.mark.needs("containerd", "toxiproxy")


SEED_A = load_suite("test_seed_a_pause_resume")
SEED_B = load_suite("test_seed_b_dual_delete")
SEED_C = load_suite("test_seed_c_shutdown")
#: switches whose only case is an explorer finding kept as a regression file (F1, F4, F5)
REG = load_suite("test_regressions")


_run_case = run_case


@pytest.fixture
def fixtures(sandbox_env, failpoints) -> dict[str, Any]:
    return {"sandbox_env": sandbox_env, "failpoints": failpoints}


MUTANTS = [
    pytest.param(SEED_A.test_pause_past_own_deadline, B.PAUSE_NO_OWN_DEADLINE),
    pytest.param(SEED_A.test_pause_reply_after_deadline, B.NO_RECONCILE_AFTER_RPC_ERROR),
    pytest.param(SEED_A.test_pause_connection_reset, B.IGNORES_PAUSE_EVENTS),
    pytest.param(SEED_A.test_crash_mid_pause, B.DEADGC_SKIPS_STUCK_PAUSING),
    pytest.param(SEED_A.test_resumed_event_only, B.RESUMED_EVENT_KEEPS_BINDINGS),
    pytest.param(SEED_A.test_deadgc_during_slow_pause, B.DEADGC_PROBES_PAUSING),
    pytest.param(SEED_B.test_dual_exit_handlers, B.DUAL_EXIT_HANDLERS),
    pytest.param(SEED_B.test_watcher_exit_backoff_replay, B.WATCHER_EXIT_WITHOUT_ID),
    pytest.param(SEED_C.test_shutdown_error_after_delete, B.DELETE_NOT_RETRIABLE),
    pytest.param(SEED_C.test_delete_outlives_exit_deadline, B.DELETE_TIMEOUT_KILLS_RETRY),
    pytest.param(REG.case_for("f1-deadgc-unknown-under-latency"), B.DEADGC_UNKNOWN_ON_FAILED_PROBE),
    pytest.param(REG.case_for("f4-resume-lost-across-restart"), B.RESTART_TRUSTS_PAUSED),
    pytest.param(REG.case_for("f5-paused-event-after-resumed"), B.APPLIES_STALE_PAUSE_EVENT),
]


def test_every_switch_has_a_mutant():
    """A new switch without a mutant here would be a switch nobody proved the checks see."""
    covered = {p.values[1] for p in MUTANTS}
    assert covered == set(B.SWITCHES), sorted(set(B.SWITCHES) - covered)


@pytest.mark.parametrize(("case", "switch"), MUTANTS, ids=[f"buggy-{p.values[1]}" for p in MUTANTS])
def test_fixed_case_without_its_fix_is_not_converged(case, switch, fixtures, request, monkeypatch):
    monkeypatch.setenv("RECONVERGE_SANDBOX_BUGS", switch)
    v = _run_case(case, fixtures, request, buggy=False)
    print(f"{switch}: {v.outcome}: {v.symptom} fired={v.fired}")
    assert v.variant == "fixed"
    assert v.outcome == Outcome.DIVERGED, (
        f"{case.__name__} fixed with {switch} on: {v.outcome} ({v.symptom}); fired {v.fired}"
    )
    assert v.fired and all(n > 0 for n in v.fired.values()), v.fired


#: the buggy variant, as the teardown leak check reads it from the parameter id (the
#: reconciler leaks on purpose; a leak at teardown is evidence, not a failure)
BUGGY = pytest.mark.parametrize("buggy", [True], ids=["buggy"])


@BUGGY
def test_misspelled_failpoint_is_inconclusive(buggy, fixtures, request, monkeypatch):
    """The shim accepts the annotation, nothing ever fires it: no catch on no fault."""
    monkeypatch.setattr(SEED_C, "SHUTDOWN_METHOD", "Shutdwn")  # the real one is Shutdown
    v = _run_case(SEED_C.test_shutdown_error_after_delete, fixtures, request, buggy=buggy)
    assert v.outcome == Outcome.INCONCLUSIVE, f"{v.outcome}: {v.symptom}"
    assert v.fired == {SEED_C.SHUTDOWN_POINT: 0}, v.fired
    assert f"fault never fired: {SEED_C.SHUTDOWN_POINT}" in v.symptom


@contextmanager
def _containerd_killed(env: Any) -> Iterator[None]:
    """containerd SIGKILLed for the span (its shims live on), started again afterwards.

    Why a kill and not a hidden socket: gRPC shares a connected subchannel between channels
    to the same target, so a new client of a renamed socket may still get through.
    """
    env.containerd.kill()
    try:
        yield
    finally:
        env.containerd.start()
        # until gRPC's reconnect back-off lets a client through again (the teardown leak
        # check must see a containerd that answers, or it reports it could not observe)
        wait_for(
            lambda: (
                leaks.containerd_tasks(env.containerd.address, env.namespace, timeout=1.0)
                is not None
            ),
            timeout=30,
            what="containerd answers Tasks.List after its restart",
        )


@pytest.mark.parametrize("buggy", [True, False], ids=["buggy", "fixed"])
def test_containerd_killed_during_the_check_is_inconclusive(buggy, fixtures, request, monkeypatch):
    """Buggy would be CAUGHT, fixed CONVERGED; with containerd dead while the leak check
    looks, neither may be concluded (nor DIVERGED: nothing was seen to go wrong)."""
    env = fixtures["sandbox_env"]
    real_leak = env.leak

    def blind_leak(*args: Any, **kwargs: Any) -> Any:
        with _containerd_killed(env):
            return real_leak(*args, **kwargs)

    monkeypatch.setattr(env, "leak", blind_leak)
    v = _run_case(SEED_C.test_shutdown_error_after_delete, fixtures, request, buggy=buggy)
    assert v.outcome == Outcome.INCONCLUSIVE, f"{v.outcome}: {v.symptom}"
    assert "truth unobservable: leak" in v.symptom, v.symptom
    assert all(n > 0 for n in v.fired.values()), v.fired  # the fault did fire: only blindness


@BUGGY
def test_frozen_shim_during_the_check_is_inconclusive(buggy, fixtures, request, monkeypatch):
    """A live shim that cannot answer ``State`` is neither PAUSED nor gone."""
    env = fixtures["sandbox_env"]
    real = chk.convergence

    def frozen(host: Any, run_dir: Path, sids: Any, **kwargs: Any) -> Any:
        pid = int(leaks.registry_entry(run_dir, env.namespace, "sb").get("pid") or 0)
        assert pid, "no shim registered for sb"
        os.kill(pid, signal.SIGSTOP)
        try:  # a short bound: the answer is "could not read", however long we ask
            return real(host, run_dir, sids, **{**kwargs, "timeout": 3.0})
        finally:
            os.kill(pid, signal.SIGCONT)

    monkeypatch.setattr(chk, "convergence", frozen)
    v = _run_case(SEED_A.test_pause_reply_after_deadline, fixtures, request, buggy=buggy)
    assert v.outcome == Outcome.INCONCLUSIVE, f"{v.outcome}: {v.symptom}"
    assert "truth unobservable: convergence" in v.symptom, v.symptom
    assert all(n > 0 for n in v.fired.values()), v.fired
