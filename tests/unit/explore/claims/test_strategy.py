"""The claims strategy: every drawn schedule is valid, draws are journaled, the menu and
the hooks' option checks give one clear error for a bad option."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ReconvergeError
from harness.explore import schedule as S
from harness.explore import worlds
from harness.explore.claims import steps as C
from harness.explore.claims import strategy
from harness.explore.draws import DrawLog
from harness.explore.engine import Options

LOG = DrawLog()


@settings(max_examples=200, deadline=None)
@given(strategy.schedules(max_steps=8, bugs=("lost_keeps_podname",), log=LOG))
def test_drawn_schedules_are_valid_and_round_trip(sched):
    assert sched.world == "claims" and sched.bugs == ("lost_keeps_podname",)
    assert 1 <= len(sched) <= 8
    for step in sched.steps:
        C.validate(step)
    assert S.Schedule.loads(sched.dumps()) == sched
    assert LOG.draws and LOG.draws[0][1] == "swarm"
    assert [i for i, _, _ in LOG.draws] == list(range(len(LOG.draws)))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_swarm_uses_only_its_menu_entries(data):
    only = strategy.menu(("toxic.down",))
    sched = data.draw(strategy.schedules(faults=only))
    faults = [s for s in sched.steps if isinstance(s, (C.Toxic, C.Intake, C.ApiserverRestart))]
    assert all(s == C.Toxic("down", "watch") for s in faults)


def test_menu_prefixes_and_opt_in_entries():
    assert strategy.menu() == strategy.FAULT_MENU
    names = [f.name for f in strategy.menu(("intake.pods",))]
    assert names == ["intake.pods.duplicate", "intake.pods.drop", "intake.pods.reorder"]
    assert not any(f.toxic for f in strategy.menu(toxics=False))
    with pytest.raises(ReconvergeError, match="matches no fault"):
        strategy.menu(("Shutdown.before",))


def test_every_menu_step_is_valid():
    for f in strategy.FAULT_MENU + strategy.OPT_IN:
        C.validate(f.make(2))


def test_hooks_validate_switches_and_options():
    hooks = worlds.hooks("claims")
    base = Options(seed=1, world="claims")
    hooks.validate(dataclasses.replace(base, bugs=("finalize_skip_returns_false",)))
    with pytest.raises(ReconvergeError, match="unknown claim-operator bug switch"):
        hooks.validate(dataclasses.replace(base, bugs=("runtime.delete_not_retriable",)))
    with pytest.raises(ReconvergeError, match="matches no fault"):
        hooks.validate(dataclasses.replace(base, faults=("Pause.after",)))
    with pytest.raises(ReconvergeError, match="sandbox-world option"):
        hooks.validate(dataclasses.replace(base, sandboxes=2))
    with pytest.raises(ReconvergeError, match="nothing left"):
        hooks.validate(dataclasses.replace(base, faults=("toxic.down",), toxics=False))
    assert hooks.STEPS is C.STEPS


def test_the_strategy_hook_draws_claims_schedules():
    hooks = worlds.hooks("claims")
    log = DrawLog()
    strat = hooks.strategy(Options(seed=1, world="claims", max_steps=3), log)
    with warnings.catch_warnings():  # one draw is all this checks
        warnings.simplefilter("ignore")
        sched = strat.example()
    assert sched.world == "claims" and len(sched) <= 3
