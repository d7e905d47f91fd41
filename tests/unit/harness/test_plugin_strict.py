"""No silent skips: every suite case gets a row, and strict turns any skip into a failure.

Run in pytester (a real pytest session with the plugin loaded from its entry point): a
skipped suite case shows a SKIPPED row with its reason, an erroring one an ERROR row, a
passing one that recorded no verdict fails; under ``--reconverge-strict`` a skip fails
whichever path raised it; ``needs("kube:…")`` names the backend, the capability and an
``auto`` fallback.
"""

from __future__ import annotations

import pytest

SUITE_CASES = """
import pytest

pytestmark = pytest.mark.suite

@pytest.fixture
def broken():
    raise RuntimeError("containerd went away")

def test_skips(verdict):
    pytest.skip("backend lacks compaction")

def test_errors(verdict, broken):
    pass

def test_forgets_verdict(verdict):
    pass

def test_records(verdict):
    verdict.record(suite="demo", case="ok", variant="fixed", fault="drop",
                   outcome="CONVERGED", symptom="view = truth")
"""

SKIPIF_SUITE = """
import pytest

@pytest.mark.suite
@pytest.mark.skipif(True, reason="no IPv6 here")
def test_skipif():
    pass

def test_plain_skip_outside_suites():
    pytest.skip("not a suite case: strict leaves it a skip")
"""

KUBE_CONFTEST = """
import pytest
from harness.providers.kube.base import Cluster

class Borrowed(Cluster):
    def stop(self):
        pass

@pytest.fixture(scope="session")
def kube_cluster():
    return Borrowed(backend="kind", creds=None, kubeconfig=None, capabilities=frozenset())
"""

KUBE_CASE = """
import pytest

@pytest.mark.needs("kube:compact-etcd")
def test_needs_compaction():
    pass

def test_needs_nothing():
    pass
"""


@pytest.fixture
def isolated(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("CI", raising=False)
    return pytester


def _row(result: pytest.RunResult, case: str) -> str:
    rows = [line for line in result.outlines if line.startswith("suite_cases ") and case in line]
    assert len(rows) == 1, "\n".join(result.outlines)
    return rows[0]


def test_every_suite_case_has_a_row_and_a_verdictless_pass_fails(isolated):
    isolated.makepyfile(test_suite_cases=SUITE_CASES)
    result = isolated.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1, failed=1, errors=1)
    assert "SKIPPED" in _row(result, "test_skips")
    assert "backend lacks compaction" in _row(result, "test_skips")
    assert "ERROR" in _row(result, "test_errors")
    assert "containerd went away" in _row(result, "test_errors")
    forgot = _row(result, "test_forgets_verdict")
    assert "ERROR" in forgot and "recorded no verdict" in forgot
    result.stdout.fnmatch_lines(["*test_forgets_verdict: a suite case must record a verdict*"])
    result.stdout.fnmatch_lines(["*demo*ok*fixed*drop*CONVERGED*view = truth*"])


def test_strict_fails_a_skipped_suite_case_and_keeps_its_skipped_row(isolated):
    isolated.makepyfile(test_suite_cases=SUITE_CASES)
    result = isolated.runpytest("-p", "no:cacheprovider", "--reconverge-strict")
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_skips: skipped under --reconverge-strict*backend lacks compaction*"]
    )
    row = _row(result, "test_skips")
    assert "SKIPPED" in row and "backend lacks compaction" in row


def test_strict_catches_skipif_on_a_suite_case_only(isolated):
    isolated.makepyfile(SKIPIF_SUITE)
    relaxed = isolated.runpytest("-p", "no:cacheprovider")
    relaxed.assert_outcomes(skipped=2)
    result = isolated.runpytest("-p", "no:cacheprovider", "--reconverge-strict")
    result.assert_outcomes(skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*skipped under --reconverge-strict*no IPv6 here*"])


def test_kube_capability_need_names_backend_and_fails_strict(isolated):
    isolated.makeconftest(KUBE_CONFTEST)
    isolated.makepyfile(KUBE_CASE)
    result = isolated.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*kube: kind cannot compact-etcd*"])
    result = isolated.runpytest("-p", "no:cacheprovider", "--reconverge-strict")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*kube: kind cannot compact-etcd*--reconverge-strict*"])


def test_auto_fallback_is_named(monkeypatch):
    from harness.providers.kube.base import Availability
    from harness.providers.kube.local import LocalProvider
    from harness.pytest_plugin.kube import fallback_note

    monkeypatch.setattr(
        LocalProvider, "availability", lambda self: Availability(False, "etcd is not built")
    )
    assert fallback_note("auto", "kind") == "auto fell back to kind: local etcd is not built"
    assert fallback_note("kind", "kind") == "", "an explicit choice is no fallback"
    assert fallback_note("auto", "local") == ""
