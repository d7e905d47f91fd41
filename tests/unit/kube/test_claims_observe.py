"""harness.checks.claims.observe: how a case's decisive step ends, and when it cannot see.

A fake truth (answers GET list requests from a dict, or raises what a dead API server
raises) and a fake operator (idle or busy, caches equal or not) stand in for the real
ones: these tests are about the rules, the integration tests run them for real.
"""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from harness.checks import claims as chk
from harness.reconciler.claims import model as m
from harness.verdict import Finding, Outcome, decide

NS = "ns"


def _claim(name: str, phase: str, pod: str, rv: str = "1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": rv},
        "spec": {"podName": pod},
        "status": {"phase": phase},
    }


class FakeTruth:
    """GET <kind list> -> items; ``fail`` (an exception) makes every request raise it."""

    def __init__(self, claims: list[dict[str, Any]] | None = None) -> None:
        self.claims = list(claims or [])
        self.fail: BaseException | None = None
        self.calls = 0

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        items = self.claims if path.endswith("/" + m.CNCLAIMS.plural) else []
        return {"items": items}


class FakeOp:
    """An operator that is idle (or not) with caches equal to the truth (or not)."""

    def __init__(self, truth: FakeTruth, *, idle: bool = True, current: bool = True) -> None:
        self.truth, self._idle, self.current = truth, idle, current
        self.n = 0

    def idle(self) -> bool:
        return self._idle

    def activity(self) -> int:
        if not self._idle:
            self.n += 1
        return self.n

    def pending(self) -> dict[str, Any]:
        return {"cnclaim": [] if self._idle else ["claim-c"]}

    def cache_versions(self) -> dict[str, dict[str, str]]:
        versions: dict[str, dict[str, str]] = {k: {} for k in chk.KINDS}
        versions["cnclaims"] = {m.name(c): m.rv(c) for c in self.truth.claims}
        if not self.current:
            versions["cnclaims"] = {}
        return versions


REBOUND = chk.fact("claim-c rebound", chk.claim_phase("claim-c", m.BOUND, pod="pod-q"))
LOST = chk.never("claim-c Lost", chk.claim_phase("claim-c", m.LOST, pod="pod-gone"), "claim-c Lost")


def _lost_signature(f: dict[str, Finding]) -> str | None:
    if chk.ended(f, "settled") and chk.failing(f, "claim-c Lost"):
        return "Lost with a dead podName"
    return None


def _decide(obs: chk.Observation, variant: str) -> tuple[Outcome, str]:
    return decide(
        variant=variant, findings=obs.findings, fired={"fault": 1}, symptom=_lost_signature
    )


def test_truth_refusing_for_the_whole_window_is_unobservable_never_caught():
    truth = FakeTruth([_claim("claim-c", m.LOST, "pod-gone")])
    truth.fail = urllib3.exceptions.MaxRetryError(None, "/", "Connection refused")
    obs = chk.observe(truth, NS, [REBOUND, LOST], op=FakeOp(truth), timeout=0.5, what="t")
    assert obs.end == "blind"
    [f] = obs.findings
    assert f.check == "truth" and not f.observed and "never answered" in f.symptom
    assert _decide(obs, "buggy")[0] is Outcome.INCONCLUSIVE
    assert _decide(obs, "fixed")[0] is Outcome.INCONCLUSIVE


def test_truth_that_stops_answering_is_unobservable():
    truth = FakeTruth([_claim("claim-c", m.BOUND, "pod-p")])
    busy = FakeOp(truth, idle=False)
    real = truth.request

    def flaky(method: str, path: str, **kw: Any) -> dict[str, Any]:
        if truth.calls >= 8:  # two good world reads, then silence
            raise urllib3.exceptions.ReadTimeoutError(None, path, "Read timed out")
        return real(method, path, **kw)

    truth.request = flaky  # type: ignore[method-assign]
    obs = chk.observe(truth, NS, [REBOUND], op=busy, timeout=0.5, what="t")
    assert obs.end == "blind", obs
    assert "stopped answering" in obs.findings[0].symptom


@pytest.mark.parametrize("status", [0, 500, 503, 429])
def test_server_errors_are_unobservable(status):
    truth = FakeTruth()
    truth.fail = ApiException(status=status, reason="etcd unavailable")
    obs = chk.observe(truth, NS, [REBOUND], timeout=0.3, what="t")
    assert obs.end == "blind" and not obs.findings[0].observed


def test_a_client_error_is_not_blindness_it_is_a_bug():
    truth = FakeTruth()
    truth.fail = ApiException(status=403, reason="Forbidden")
    with pytest.raises(ApiException):
        chk.World.read(truth, NS)  # type: ignore[arg-type]


def test_a_raising_check_is_an_error_not_a_timeout():
    truth = FakeTruth([_claim("claim-c", m.LOST, "pod-gone")])

    def broken(w: chk.World) -> Finding:
        raise KeyError("status")

    with pytest.raises(KeyError):
        chk.observe(truth, NS, [broken], timeout=5, what="t")


def test_converged_needs_quiescence_and_a_hold():
    truth = FakeTruth([_claim("claim-c", m.BOUND, "pod-q")])
    obs = chk.observe(truth, NS, [REBOUND, LOST], op=FakeOp(truth), hold=0.3, timeout=5, what="t")
    assert obs.end == "converged" and obs.seconds >= 0.3
    assert _decide(obs, "fixed")[0] is Outcome.CONVERGED


def test_all_ok_but_operator_still_busy_is_not_converged():
    truth = FakeTruth([_claim("claim-c", m.BOUND, "pod-q")])
    obs = chk.observe(truth, NS, [REBOUND], op=FakeOp(truth, idle=False), timeout=0.5, what="t")
    assert obs.end == "timeout"
    assert _decide(obs, "fixed")[0] is Outcome.DIVERGED


def test_settled_bad_state_is_caught_only_with_the_signature():
    truth = FakeTruth([_claim("claim-c", m.LOST, "pod-gone")])
    obs = chk.observe(truth, NS, [REBOUND, LOST], op=FakeOp(truth), quiet=0.2, timeout=5, what="t")
    assert obs.end == "settled"
    assert _decide(obs, "buggy") == (Outcome.CAUGHT, "Lost with a dead podName")
    assert _decide(obs, "fixed")[0] is Outcome.DIVERGED


def test_a_busy_timeout_is_not_a_catch():
    """A reconciler that stays busy times out: that is MISSED, never CAUGHT."""
    truth = FakeTruth([_claim("claim-c", m.LOST, "pod-gone")])
    busy = FakeOp(truth, idle=False)
    obs = chk.observe(truth, NS, [REBOUND, LOST], op=busy, quiet=0.1, timeout=0.5, what="t")
    assert obs.end == "timeout"
    outcome, text = _decide(obs, "buggy")
    assert outcome is Outcome.MISSED and "failed differently" in text


def test_stale_caches_are_not_settled():
    truth = FakeTruth([_claim("claim-c", m.LOST, "pod-gone")])
    stale = FakeOp(truth, current=False)
    obs = chk.observe(truth, NS, [LOST], op=stale, quiet=0.1, timeout=0.5, what="t")
    assert obs.end == "timeout"


@pytest.mark.parametrize("blink", [False, True])
def test_final_evidence_needs_the_state_to_hold_through_every_read(blink):
    """A truth read that fails resets the 'held for N s' clock: nothing unseen is held."""
    truth = FakeTruth([_claim("claim-c", m.LOST, "pod-gone")])
    real = truth.request
    requests = [0]

    def blinking(method: str, path: str, **kw: Any) -> dict[str, Any]:
        requests[0] += 1
        if blink and requests[0] % 12 == 0:  # every third world read fails
            raise urllib3.exceptions.MaxRetryError(None, path, "refused")
        return real(method, path, **kw)

    truth.request = blinking  # type: ignore[method-assign]
    seen: list[float] = []

    def held(f: Any, w: chk.World, stable: float) -> str | None:
        seen.append(stable)
        return "held" if stable >= 0.4 else None

    obs = chk.observe(truth, NS, [LOST], final=held, timeout=1.5, interval=0.02, what="t")
    if blink:
        assert obs.end in ("timeout", "blind") and max(seen) < 0.4, (obs.end, max(seen))
    else:
        assert obs.end == "held"


def test_signature_helpers():
    f = {
        "a": Finding("a", False, "bad"),
        "b": Finding("b", True),
        "c": Finding("c", False, "?", observed=False),
        chk.END: Finding(chk.END, True, "x", details=["settled"]),
    }
    assert chk.failing(f, "a") and not chk.failing(f, "a", "b") and not chk.failing(f, "c")
    assert chk.holding(f, "b") and not chk.holding(f, "missing")
    assert chk.ended(f, "settled") and not chk.ended(f, "looping")
