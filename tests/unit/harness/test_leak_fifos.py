"""FIFO fds held by a process: attributed to their container id, counted against a baseline.

The process under test is this one (a FIFO opened here stands for one containerd holds):
real FIFOs, real ``/proc/<pid>/fd`` links, no containerd needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.checks import leaks
from harness.verdict import Unobservable


@contextmanager
def held_fifo(path: Path) -> Iterator[int]:
    """A named FIFO this process holds open (RDWR: no writer needed to open it)."""
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        yield fd
    finally:
        os.close(fd)


def test_fifos_held_by_a_process_are_attributed_to_their_container(tmp_path):
    path = tmp_path / "abc123-stdout"
    with held_fifo(path):
        held = leaks.fifos_held(os.getpid())
        assert held.get("abc123") == [str(path)], held
    assert "abc123" not in leaks.fifos_held(os.getpid())


def test_fifos_of_a_gone_process_are_none():
    assert leaks.fifos_held(2**22 + 7) == {}
    assert leaks.fifo_fds(2**22 + 7) == []


def test_fifo_fds_counts_named_fifos_only(tmp_path):
    r, w = os.pipe()  # anonymous: containerd's own plumbing, never a finding
    try:
        with held_fifo(tmp_path / "c1-stdin"), held_fifo(tmp_path / "c1-stderr"):
            fds = leaks.fifo_fds(os.getpid())
            assert sorted(p for p in fds if p.startswith(str(tmp_path))) == [
                str(tmp_path / "c1-stderr"),
                str(tmp_path / "c1-stdin"),
            ]
            assert not [p for p in fds if not p.startswith("/")]
    finally:
        os.close(r)
        os.close(w)


def test_only_fifo_fds_beyond_the_baseline_are_findings(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with held_fifo(tmp_path / "old-stdout"):
        baseline = leaks.fifo_fds(os.getpid())
        kwargs = dict(namespace="ns1", containerd_pid=os.getpid(), fifo_baseline=baseline)
        assert leaks.find_leaks(run_dir, test="t::a", **kwargs) == []
        with held_fifo(tmp_path / "new1-stdout"), held_fifo(tmp_path / "new1-stderr"):
            found = leaks.find_leaks(run_dir, test="t::a", **kwargs)
            assert [(f.kind, f.container_id, f.namespace, f.test) for f in found] == [
                ("fifo", "new1", "ns1", "t::a")
            ], found
            assert "2 FIFO fd(s) more than before the test" in found[0].evidence
            assert leaks.find_leaks(run_dir, known_tasks={"new1"}, **kwargs) == []
        assert leaks.wait_until_clean(run_dir, timeout=1.0, **kwargs) == []


def test_a_finding_names_its_container_and_the_test_that_claimed_the_namespace(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leaks.claim_namespace(run_dir, "ns1", "tests/x.py::test_y[1]")
    with held_fifo(tmp_path / "cid9-stdout"):
        found = leaks.find_leaks(
            run_dir, namespace="ns1", containerd_pid=os.getpid(), fifo_baseline=[]
        )
    mine = [f for f in found if f.container_id == "cid9"]
    assert [f.test for f in mine] == ["tests/x.py::test_y[1]"], found
    text = str(mine[0])
    assert "ns1/cid9" in text and "tests/x.py::test_y[1]" in text, text
    assert leaks.owner_of(run_dir, "unclaimed") == ""


def test_wait_until_clean_reports_only_what_is_new(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with held_fifo(tmp_path / "a-stdout"):
        kwargs = dict(namespace="ns", containerd_pid=os.getpid(), fifo_baseline=[])
        before = leaks.find_leaks(run_dir, **kwargs)
        assert [f.container_id for f in before if f.path.startswith(str(tmp_path))] == ["a"]
        with held_fifo(tmp_path / "b-stdout"):
            found = leaks.wait_until_clean(run_dir, timeout=0.2, ignore=before, **kwargs)
        assert [f.container_id for f in found] == ["b"], found


def test_a_probe_that_cannot_answer_is_not_clean(tmp_path, monkeypatch):
    """An OS-level failure to ask is Unobservable (an INCONCLUSIVE verdict), never clean."""

    def broken(*args: object, **kwargs: object) -> list[leaks.Finding]:
        raise ConnectionError("containerd did not answer")

    monkeypatch.setattr(leaks, "find_leaks", broken)
    with pytest.raises(Unobservable, match="ConnectionError: containerd did not answer"):
        leaks.wait_until_clean(tmp_path, timeout=0.1)


def test_run_sync_works_inside_a_running_loop():
    import asyncio

    async def answer() -> int:
        return 42

    async def caller() -> int:
        return leaks.run_sync(answer)  # the detector called from an async test

    assert leaks.run_sync(answer) == 42
    assert asyncio.run(caller()) == 42
