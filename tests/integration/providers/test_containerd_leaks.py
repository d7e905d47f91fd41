"""The leak detector against a real containerd 1.6.20: every kind it asks containerd about.

Checked here: a live task is a ``containerd-task`` finding that names the test and the
container; a clean namespace reads as clean well inside the 1 s budget; a containerd that
cannot answer is Unobservable (neither clean nor a leak); and a test that
leaves a task behind fails in teardown with a report naming itself — through
``ctd_namespace`` and through a bare ``containerd`` (run in a child pytest, since that
failure is the point).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.checks import leaks
from harness.shim import identity
from harness.verdict import Unobservable

pytestmark = pytest.mark.needs("containerd")


def _run_stub(containerd, ns: str, cid: str) -> None:
    containerd.run_stub_task(ns, cid)


def _all_kinds(containerd, ns: str) -> dict[str, object]:
    return dict(
        state_dir=containerd.state,
        namespace=ns,
        containerd_address=containerd.address,
        containerd_pid=containerd.proc.pid,
        fifo_baseline=leaks.fifo_fds(containerd.proc.pid),
    )


def test_a_live_task_is_found_and_attributed_then_clean_within_budget(
    containerd, ctd_namespace, reconverge_run, request
):
    ns, cid = ctd_namespace, "alive"
    kwargs = _all_kinds(containerd, ns)
    _run_stub(containerd, ns, cid)
    found = leaks.find_leaks(reconverge_run.dir, **kwargs)
    by_kind = {f.kind: f for f in found}
    assert set(by_kind) == {"containerd-task", "shim-process", "bundle", "fifo"}, found
    for f in found:
        # no test= given: the owner comes from the namespace ctd_namespace claimed
        assert (f.container_id, f.namespace, f.test) == (cid, ns, request.node.nodeid), f
        assert f"{ns}/{cid}" in str(f) and request.node.nodeid in str(f)
    assert "RUNNING" in by_kind["containerd-task"].evidence
    assert by_kind["fifo"].path.endswith(f"/{ns}/{cid}/log"), by_kind["fifo"]  # shim log
    containerd.remove_task(ns, cid)
    t0 = time.monotonic()
    assert leaks.wait_until_clean(reconverge_run.dir, timeout=1.0, **kwargs) == []
    took = time.monotonic() - t0
    assert took < 1.0, took
    t0 = time.monotonic()
    assert leaks.find_leaks(reconverge_run.dir, **kwargs) == []
    one = time.monotonic() - t0
    assert one < 0.5, f"one clean probe took {one:.3f} s"


def test_a_real_daemon_without_its_registry_entry_is_found_by_the_proc_scan(
    containerd, ctd_namespace, reconverge_run, request
):
    """The registry is one witness; /proc is another. A live stub daemon whose entry is gone
    (an older or broken stub, a fork that never wrote one) is still found, by its name and
    run, and attributed by the bundle it runs in."""
    ns, cid = ctd_namespace, "unlisted"
    _run_stub(containerd, ns, cid)
    entry = leaks.registry_entry(reconverge_run.dir, ns, cid)
    pid = int(entry["pid"])
    assert identity.comm(pid) == identity.NAME and identity.run_of(pid) == reconverge_run.id
    assert identity.registry_of(pid, reconverge_run.dir) == (ns, cid)
    Path(entry["registry"]).unlink()
    found = leaks.find_leaks(reconverge_run.dir, namespace=ns)
    assert [(f.kind, f.namespace, f.container_id, f.pid, f.test) for f in found] == [
        ("shim-unregistered", ns, cid, pid, request.node.nodeid)
    ], found
    assert leaks.find_leaks(reconverge_run.dir, namespace=ns, known_tasks={cid}) == []
    containerd.remove_task(ns, cid)  # Shutdown still ends it; the check at teardown is clean


def test_a_containerd_that_cannot_answer_is_unobservable_not_clean(tmp_path):
    """No containerd on the socket: neither "no tasks" nor a finding — Unobservable, at once."""
    gone = tmp_path / "nothing.sock"
    for ask in (
        lambda: leaks.find_leaks(tmp_path, namespace="ns", containerd_address=gone),
        lambda: leaks.containerd_tasks(gone, "ns", timeout=1.0),
        lambda: leaks.wait_until_clean(tmp_path, timeout=0.3, containerd_address=gone),
    ):
        t0 = time.monotonic()
        with pytest.raises(
            Unobservable, match=r"did not answer Tasks\.List \(cap [0-9.]*s\): UNAVAILABLE"
        ):
            ask()
        assert time.monotonic() - t0 < 2.0


LEFT_BEHIND = """
from harness.shim import identity
from harness.verdict import Unobservable

def _run(containerd, ns, cid):
    containerd.run_stub_task(ns, cid)

def test_with_namespace(containerd, ctd_namespace):
    _run(containerd, ctd_namespace, "forgotten")

def test_bare(containerd):
    _run(containerd, "bare-ns", "stray")

def test_bare_but_clean(containerd):
    _run(containerd, "clean-ns", "tidy")
    containerd.remove_task("clean-ns", "tidy")
"""


def test_a_test_that_leaves_a_task_fails_naming_itself(pytester, short_run_root, monkeypatch):
    """The pytest-level check, seen from outside: both fixture paths report, a clean one not."""
    pytester.makepyfile(test_left_behind=LEFT_BEHIND)
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(short_run_root))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=180)
    out = result.stdout.str()
    result.assert_outcomes(passed=3, errors=2)
    assert "leaked after the test" in out, out
    for cid, test in (("forgotten", "test_with_namespace"), ("stray", "test_bare")):
        lines = [ln for ln in out.splitlines() if f"/{cid} (test " in ln]
        assert lines, out
        assert all(test in ln for ln in lines), lines
        assert any(ln.strip().startswith("containerd-task of") for ln in lines), lines
    assert "tidy" not in out, out
    runs = short_run_root
    assert not runs.exists() or not any(runs.iterdir()), "the child run left its directory"
