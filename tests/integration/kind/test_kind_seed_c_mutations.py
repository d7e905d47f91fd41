"""Can the kind seed-c verdicts lie? The suite's own case, run with one thing broken.

- the failpoint's method misspelled in the pod annotation (``Shutdwn``): the stub enables a
  point no RPC evaluates, nothing leaks, and the case must end **INCONCLUSIVE** (its fault
  never fired) — not MISSED, and certainly not a pass;
- the control (``fixed``) run with the failpoint on after all: its shims leak, and the case
  must end **DIVERGED** — the node leak checker, not the fire count, must notice (the shims
  did receive Delete and Shutdown, so the fault counts are non-zero).

The case function is called directly with this test's fixtures and a recorder of its own, so
these runs add no rows to the verdict table. Uses the session's kind cluster.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from harness.pytest_plugin import VerdictRecorder
from harness.suite_reuse import load_suite
from harness.verdict import Outcome

pytestmark = [pytest.mark.needs("kind"), pytest.mark.timeout(900)]

KIND_C = load_suite("test_kind_seed_c")


class Capture(VerdictRecorder):
    """The plugin's recorder minus the table: the verdict stays here for the assertions."""

    def __init__(self, request: pytest.FixtureRequest, label: str) -> None:
        item = SimpleNamespace(
            config=request.config, user_properties=[], nodeid=f"{request.node.nodeid}::{label}"
        )
        super().__init__(item)  # type: ignore[arg-type]


def _run(request, fixtures: dict[str, Any], *, failpoint: bool) -> Any:
    fn = KIND_C.test_shutdown_error_via_kubelet
    rec = Capture(request, fn.__name__)
    values = {**fixtures, "failpoint": failpoint, "verdict": rec}
    try:
        fn(**{name: values[name] for name in inspect.signature(fn).parameters})
    except (AssertionError, pytest.skip.Exception):
        pass  # judge fails (or, not strict, skips) a case whose verdict is not the expected one
    assert rec.value is not None, "the case recorded no verdict"
    return rec.value


@pytest.fixture
def fixtures(kind_cluster, kind_truth, kind_namespace) -> dict[str, Any]:
    return {
        "kind_cluster": kind_cluster,
        "kind_truth": kind_truth,
        "kind_namespace": kind_namespace,
    }


def test_misspelled_failpoint_is_inconclusive(request, fixtures, monkeypatch):
    monkeypatch.setattr(KIND_C, "SHUTDOWN_METHOD", "Shutdwn")
    v = _run(request, fixtures, failpoint=True)
    assert v.outcome == Outcome.INCONCLUSIVE, v
    assert v.fired == {"shim.Shutdown.before": 0}, v.fired


def test_control_with_the_fault_is_diverged(request, fixtures, monkeypatch):
    monkeypatch.setattr(
        KIND_C,
        "_annotations",
        lambda _failpoint: KIND_C.failpoint_annotations(
            **{KIND_C.SHUTDOWN_METHOD: KIND_C.SHUTDOWN_TERM}
        ),
    )
    v = _run(request, fixtures, failpoint=False)
    assert v.outcome == Outcome.DIVERGED, v
    assert v.fired["shim Delete received"] == 2 and v.fired["shim Shutdown received"] == 2, v
    assert "leak" in v.symptom, v.symptom
