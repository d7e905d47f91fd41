"""Mutation meta-test of the seed-d suites: can their verdicts lie?

A verdict is only worth something if it changes when the thing it judges changes. So each
test here runs a real seed-d case (the suite's own function, on the real API server, with
its own checks and symptom predicate) with one thing broken, and asserts the verdict moved:

- every switch: the **fixed** case with only that fix removed (the operator runs with that
  one switch on, the case still expects the fixed outcome) must be DIVERGED — not
  CONVERGED, and not INCONCLUSIVE either (its fault fired and the truth was seen: the
  checks themselves must notice);
- a case whose failpoint name is misspelled must end INCONCLUSIVE (its fault never fired),
  not CONVERGED;
- a case whose truth API server does not answer during the check must end INCONCLUSIVE,
  not CAUGHT (the buggy variant would otherwise be caught on no evidence) — nor
  DIVERGED (the fixed one).

The case functions are called directly with this test's fixtures, and a verdict recorder
of their own (so these runs add no rows to the verdict table). Budget: the suites'
generous settle time is cut to ``MUTANT_SETTLE`` — a mutant's verdict is decided by a final
state (settled, looping, held, seen), well inside it.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from harness.checks import claims as chk
from harness.pytest_plugin import VerdictRecorder
from harness.reconciler.claims import bugs as B
from harness.verdict import Outcome

pytestmark = [pytest.mark.needs("toxiproxy", "etcd", "kube-apiserver")]

SUITES = Path(__file__).resolve().parents[3] / "suites"
MUTANT_SETTLE = 12.0
BLIND_WINDOW = 4.0  # how long the blinded check keeps asking the truth


def _load(stem: str) -> ModuleType:
    """Import a suite module by path (``suites`` is not a package)."""
    name = f"_mutation_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SUITES / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


CLAIMS = _load("test_seed_d_claims")
WATCH = _load("test_seed_d_watch")


class Capture(VerdictRecorder):
    """The plugin's recorder, minus the table: the verdict stays here for the assertions."""

    def __init__(self, request: pytest.FixtureRequest, label: str) -> None:
        item = SimpleNamespace(
            config=request.config, user_properties=[], nodeid=f"{request.node.nodeid}::{label}"
        )
        super().__init__(item)  # type: ignore[arg-type]


def _run_case(
    fn: Callable[..., Any], fixtures: dict[str, Any], request: pytest.FixtureRequest, **given: Any
) -> Any:
    """Call a suite case with the fixtures it names; return the verdict it recorded."""
    rec = Capture(request, fn.__name__)
    values = {**fixtures, **given, "verdict": rec, "request": request}
    kwargs = {name: values[name] for name in inspect.signature(fn).parameters}
    try:
        fn(**kwargs)
    except (AssertionError, pytest.skip.Exception):
        pass  # judge fails (or, not strict, skips) a case whose verdict is not the expected one
    assert rec.value is not None, f"{fn.__name__} recorded no verdict"
    return rec.value


@pytest.fixture
def fixtures(
    claim_operator,
    kube_cluster,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    claim_timing,
    failpoints,
    reconverge_run,
    monkeypatch,
) -> dict[str, Any]:
    """What the seed-d cases ask for, with the suites' settle time cut for mutants."""
    monkeypatch.setattr(CLAIMS, "SETTLE", MUTANT_SETTLE)
    monkeypatch.setattr(WATCH, "SETTLE", MUTANT_SETTLE)
    return {
        "claim_operator": claim_operator,
        "kube_cluster": kube_cluster,
        "kube_truth": kube_truth,
        "kube_namespace": kube_namespace,
        "kubelet": kubelet,
        "kube_paths": kube_paths,
        "claim_timing": claim_timing,
        "failpoints": failpoints,
        "reconverge_run": reconverge_run,
    }


MUTANTS = [
    pytest.param(CLAIMS.test_finalize_pod_held_by_other_claim, B.FINALIZE_SKIP_RETURNS_FALSE),
    pytest.param(CLAIMS.test_scalein_during_migration, B.SCALEIN_INCLUDES_MIGRATING),
    pytest.param(CLAIMS.test_lost_claim_keeps_pod_name, B.LOST_KEEPS_PODNAME),
    pytest.param(CLAIMS.test_pod_watch_maps_by_spec_pod_name, B.POD_WATCH_LABEL_ONLY),
    pytest.param(WATCH.test_reset_peer_mid_watch, B.WATCH_END_MEANS_DONE),
    pytest.param(WATCH.test_black_hole_half_open_watch, B.WATCH_NO_READ_TIMEOUT),
    pytest.param(WATCH.test_compaction_410_gone, B.WATCH_NO_RELIST_ON_410),
]


def test_every_switch_has_a_mutant():
    """A new switch without a mutant here would be a switch nobody proved the checks see."""
    covered = {p.values[1] for p in MUTANTS}
    assert covered == set(B.SWITCHES), sorted(set(B.SWITCHES) - covered)


@pytest.mark.parametrize(("case", "switch"), MUTANTS, ids=[p.values[1] for p in MUTANTS])
def test_fixed_case_without_its_fix_is_not_converged(case, switch, fixtures, request):
    op_factory = fixtures["claim_operator"]

    def only_this_fix_removed(bugs: Any = (), **kw: Any) -> Any:
        return op_factory({switch}, **kw)

    v = _run_case(case, fixtures, request, buggy=False, claim_operator=only_this_fix_removed)
    print(f"{switch}: {v.outcome}: {v.symptom} fired={v.fired}")
    assert v.variant == "fixed"
    assert v.outcome == Outcome.DIVERGED, (
        f"{case.__name__} fixed with {switch} on: {v.outcome} ({v.symptom}); fired {v.fired}"
    )


def test_misspelled_failpoint_is_inconclusive(fixtures, request, monkeypatch):
    misspelled = "claims.watch.pod.intake"  # the real one is claims.watch.pods.intake
    monkeypatch.setattr(WATCH, "INTAKE_POINT", misspelled)
    v = _run_case(
        WATCH.test_intake_faults_are_harmless,
        fixtures,
        request,
        term="duplicate(2)",
        fault="each pod event delivered 3 times",
        counter="duplicated",
        expect=lambda n: n >= 2,
    )
    assert v.outcome == Outcome.INCONCLUSIVE, f"{v.outcome}: {v.symptom}"
    assert v.fired[misspelled] == 0
    assert f"fault never fired: {misspelled}" in v.symptom


@pytest.mark.parametrize("buggy", [True, False], ids=["buggy", "fixed"])
def test_unreachable_truth_is_inconclusive(buggy, fixtures, request, monkeypatch):
    """Buggy would be CAUGHT, fixed CONVERGED; with the API server not answering, neither.

    (And a blind fixed case is not DIVERGED either: nothing was seen to diverge.)
    """
    monkeypatch.setattr(CLAIMS, "SETTLE", BLIND_WINDOW)
    proxy = fixtures["kube_paths"].factory.create("truth", fixtures["kube_cluster"].address)
    truth = fixtures["kube_cluster"].client(via=proxy.listen, user_agent="reconverge-truth")
    real_observe = chk.observe

    def observe_blind(*args: Any, **kwargs: Any) -> Any:
        with proxy.down():  # the check's window: every truth read refused
            return real_observe(*args, **kwargs)

    monkeypatch.setattr(chk, "observe", observe_blind)
    try:
        v = _run_case(
            CLAIMS.test_pod_watch_maps_by_spec_pod_name,
            fixtures,
            request,
            buggy=buggy,
            kube_truth=truth,
        )
    finally:
        truth.close()
    assert v.outcome == Outcome.INCONCLUSIVE, f"{v.outcome}: {v.symptom}"
    assert "truth unobservable" in v.symptom, v.symptom
    assert all(n > 0 for n in v.fired.values()), v.fired  # the fault did fire: only blindness
