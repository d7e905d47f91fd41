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

from typing import Any

import pytest

from harness.checks import claims as chk
from harness.reconciler.claims import bugs as B
from harness.suite_reuse import load_suite, run_case
from harness.verdict import Outcome

pytestmark = [pytest.mark.needs("toxiproxy", "etcd", "kube-apiserver")]

MUTANT_SETTLE = 12.0
BLIND_WINDOW = 4.0  # how long the blinded check keeps asking the truth


CLAIMS = load_suite("test_seed_d_claims")
WATCH = load_suite("test_seed_d_watch")


_run_case = run_case


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


def _explore_found() -> set[str]:
    """Switches whose proof is an explorer regression case run both ways
    (``suites/test_claims_regressions.py``: buggy CAUGHT, fixed CONVERGED)."""
    from pathlib import Path

    from harness.explore import regress

    root = Path(__file__).resolve().parents[3] / "suites" / "regressions" / "claims"
    return {b for f in root.glob("*.json") for b in regress.load(f).schedule.bugs}


#: switches no seed-d case exercises; their regression case is the mutant
EXPLORE_ONLY = {B.NO_PERIODIC_RESYNC}


def test_every_switch_has_a_mutant():
    """A new switch without a mutant here would be a switch nobody proved the checks see."""
    covered = {p.values[1] for p in MUTANTS}
    assert _explore_found() >= EXPLORE_ONLY, sorted(EXPLORE_ONLY - _explore_found())
    covered |= EXPLORE_ONLY
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
