"""The seed predicates demand the whole signature: part of it, or another failure, is MISSED.

Why: a buggy case used to be CAUGHT when *any* checker was unhappy — overlapping Deletes
alone, any leftover, a reconciler that stayed busy. These feed the suites' own predicates
(imported from ``suites/``, which is not a package) with findings as the checkers build
them, and let ``harness.verdict.decide`` conclude.
"""

from __future__ import annotations

from typing import Any

from harness.checks import sandbox as chk
from harness.suite_reuse import load_suite
from harness.verdict import Outcome, decide

SEED_A = load_suite("test_seed_a_pause_resume")
SEED_B = load_suite("test_seed_b_dual_delete")
CRI = load_suite("test_seed_b_cri")

LEAKED = {
    "shim_alive": True,
    "shim_answers": True,
    "shim_status": chk.NO_TASK,
    "shim_holds_task": False,
    "containerd_task": "",
    "bundle": False,
}
RACED = {"requests": 2, "overlaps": 1, "not_found": 1, "shutdown_noops": 1, "outcomes": []}


def _findings(delete: dict[str, Any], leak: dict[str, Any]) -> list[chk.SandboxFinding]:
    return [
        chk.SandboxFinding("delete", ok=not delete.get("overlaps"), symptom="d", facts=delete),
        chk.SandboxFinding("leak", ok=not leak.get("shim_alive"), symptom="l", facts=leak),
    ]


def _buggy(findings: list[Any], symptom: Any) -> Outcome:
    outcome, _ = decide(variant="buggy", findings=findings, fired={"f": 1}, symptom=symptom)
    return outcome


def test_seed_b_whole_signature_is_caught() -> None:
    assert _buggy(_findings(RACED, LEAKED), SEED_B.dual_delete_signature) is Outcome.CAUGHT


def test_seed_b_overlapping_deletes_without_the_leak_are_missed() -> None:
    gone = {**LEAKED, "shim_alive": False, "shim_answers": False, "shim_status": chk.GONE}
    assert _buggy(_findings(RACED, gone), SEED_B.dual_delete_signature) is Outcome.MISSED


def test_seed_b_a_leftover_of_another_shape_is_missed() -> None:
    other = {**LEAKED, "shim_status": "STOPPED", "containerd_task": "STOPPED", "bundle": True}
    one = {"requests": 1, "overlaps": 0, "not_found": 0, "shutdown_noops": 0}
    assert _buggy(_findings(one, other), SEED_B.dual_delete_signature) is Outcome.MISSED
    assert _buggy(_findings(RACED, other), SEED_B.dual_delete_signature) is Outcome.MISSED


def test_cri_signature_also_needs_the_kubelet_view_clean() -> None:
    listed = chk.SandboxFinding("kubelet view", ok=False, symptom="k", facts={"listed": True})
    clean = chk.SandboxFinding("kubelet view", ok=True, symptom="k", facts={"listed": False})
    base = _findings(RACED, LEAKED)
    assert _buggy([*base, clean], CRI._symptom) is Outcome.CAUGHT
    assert _buggy([*base, listed], CRI._symptom) is Outcome.MISSED


def test_seed_a_a_busy_reconciler_timing_out_is_not_stuck_pausing() -> None:
    view = {"sb": {"state": "PAUSING", "pausing_at": 1}}
    facts = {"view": view, "truth": {"sb": "PAUSED"}}
    timed_out = chk.SandboxFinding(
        "convergence", ok=False, symptom="never quiescent", facts={**facts, "judged": "timeout"}
    )
    at_horizon = chk.SandboxFinding(
        "convergence", ok=False, symptom="PAUSING", facts={**facts, "judged": "horizon"}
    )

    def stuck(f: Any) -> str | None:
        return chk.signature(SEED_A._stuck_pausing(f), "stuck")

    assert _buggy([timed_out], stuck) is Outcome.MISSED
    assert _buggy([at_horizon], stuck) is Outcome.CAUGHT


def test_an_unobserved_leak_is_inconclusive_whatever_the_rest_says() -> None:
    blind = chk.unobservable("leak", "containerd: UNAVAILABLE")
    delete = chk.SandboxFinding("delete", ok=False, symptom="d", facts=RACED)
    assert _buggy([delete, blind], SEED_B.dual_delete_signature) is Outcome.INCONCLUSIVE
