"""The verdict rules: a verdict is only as good as its evidence."""

from harness.verdict import Finding, Outcome, Verdict, decide


def _leak(ok: bool = False, observed: bool = True) -> Finding:
    return Finding("leak", ok, "" if ok else "leaked shim: shim alive", observed=observed)


def _symptom(findings):
    leak = findings.get("leak")
    return leak.symptom if leak is not None and not leak.ok else None


def test_buggy_caught_only_on_its_symptom():
    out, text = decide(variant="buggy", findings=[_leak()], fired={"fp": 1}, symptom=_symptom)
    assert (out, text) == (Outcome.CAUGHT, "leaked shim: shim alive")


def test_buggy_failing_differently_is_missed():
    other = Finding("convergence", False, "did not converge in 5s")
    out, text = decide(
        variant="buggy", findings=[other, _leak(ok=True)], fired={"fp": 1}, symptom=_symptom
    )
    assert out is Outcome.MISSED
    assert text.startswith("failed differently: convergence")


def test_buggy_without_predicate_cannot_be_caught():
    out, _ = decide(variant="buggy", findings=[_leak()], fired={"fp": 1})
    assert out is Outcome.MISSED


def test_unobservable_truth_is_inconclusive_for_both_variants():
    for variant in ("buggy", "fixed"):
        out, text = decide(
            variant=variant, findings=[_leak(observed=False)], fired={"fp": 1}, symptom=_symptom
        )
        assert out is Outcome.INCONCLUSIVE, variant
        assert "unobservable" in text


def test_fault_that_never_fired_is_inconclusive():
    out, text = decide(variant="fixed", findings=[_leak(ok=True)], fired={"shim.Paus.after": 0})
    assert out is Outcome.INCONCLUSIVE
    assert "shim.Paus.after" in text
    out, _ = decide(variant="buggy", findings=[_leak()], fired={}, symptom=_symptom)
    assert out is Outcome.INCONCLUSIVE


def test_fixed_converged_or_diverged():
    assert decide(variant="fixed", findings=[_leak(ok=True)], fired={"x": 2})[0] is (
        Outcome.CONVERGED
    )
    out, text = decide(variant="fixed", findings=[_leak()], fired={"x": 2})
    assert out is Outcome.DIVERGED and text.startswith("leak: leaked shim")


def test_verdict_round_trip_and_expectation():
    v = Verdict("seed-b", "case", "buggy", "f", "CAUGHT", "s", 1.0, fired={"a": 1, "b": 2})
    assert Verdict.from_dict(v.to_dict() | {"unknown_field": 1}) == v
    assert v.ok and v.fired_text() == "a=1,b=2"
    assert not Verdict("s", "c", "fixed", "f", "INCONCLUSIVE", "", 0.0).ok
