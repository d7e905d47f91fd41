"""Regression cases the explorer found: every ``suites/regressions/*.json`` runs here.

Each file is a shrunk schedule (``harness/explore``) with the outcome it showed and how it
was found. A file with bug switches runs in both directions: ``buggy`` (its switches on)
must fail the same invariant again — CAUGHT only when the file's own check failed — and
``fixed`` (every fix on) must CONVERGE. A file without switches is a failure of the fixed
reconciler that has since been fixed: ``fixed`` must CONVERGE. The schedule runs on the
suites' own ``sandbox_env`` (real containerd 1.6.20, the stub shim, toxiproxy), and the
verdict follows ``harness.verdict``'s rules: a schedule whose faults never fired is
INCONCLUSIVE, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.explore import regress
from harness.explore.sandbox.execute import Executor
from harness.explore.schedule import Schedule

pytestmark = [pytest.mark.needs("containerd", "toxiproxy"), pytest.mark.suite]

SUITE = "regressions"
FILES = sorted(Path(__file__).parent.joinpath("regressions").glob("*.json"))


def _cases() -> list:
    out = []
    for f in FILES:
        saved = regress.load(f)
        if saved.schedule.bugs:
            out.append(pytest.param(f, True, id=f"buggy-{f.stem}"))
        out.append(pytest.param(f, False, id=f"fixed-{f.stem}"))
    return out


@pytest.mark.parametrize("path, buggy", _cases())
def test_regression(path: Path, buggy: bool, sandbox_env, verdict):
    saved = regress.load(path)
    sched = saved.schedule if buggy else Schedule(saved.schedule.steps, world=saved.schedule.world)
    result = Executor(sandbox_env, sched).run()
    regress.judge_replay(
        verdict,
        suite=SUITE,
        path=path,
        saved=saved,
        result=result,
        buggy=buggy,
        fault="; ".join(s.describe() for s in sched.steps if s.op in ("shim_fault", "toxic")),
    )


def case_for(stem: str) -> Callable[..., None]:
    """One file's case as a suite-style function ``(buggy, sandbox_env, verdict)``.

    Why: the mutation meta-test (``harness.suite_reuse.run_case``) calls suite functions by
    their fixture names; a switch whose only case is a regression file (F1's
    ``cube.deadgc_unknown_on_failed_probe``) gets its mutant from here.
    """
    path = Path(__file__).parent / "regressions" / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(path)

    def case(buggy: bool, sandbox_env: Any, verdict: Any) -> None:
        test_regression(path, buggy, sandbox_env, verdict)

    case.__name__ = case.__qualname__ = f"regression_{stem.replace('-', '_')}"
    return case
