"""Claims-world regression cases the explorer found: every ``suites/regressions/claims/*.json``.

Each file is a shrunk claims schedule (``reconverge explore --world claims``) with the
outcome it showed and how it was found. A file with bug switches runs in both directions:
``buggy`` (its switches on) must fail the same invariant again — CAUGHT only when the
file's own check failed — and ``fixed`` (every fix on) must CONVERGE. A file without
switches is a failure of the fixed operator that has since been fixed: ``fixed`` must
CONVERGE.

The schedule runs on the suites' own kube fixtures — the session's etcd + kube-apiserver
(``kube_cluster``), a fresh namespace (``kube_namespace``), the operator's ``api`` and
``watch`` proxies (``kube_paths``), the fake kubelet, the suite time scale — assembled
into the :class:`~harness.explore.claims.world.ClaimsEnv` the explorer builds per schedule.
Verdicts follow ``harness.verdict``: a schedule whose faults never fired is INCONCLUSIVE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.explore import regress
from harness.explore.claims.execute import Executor
from harness.explore.claims.world import ClaimsEnv, explore_timing
from harness.explore.schedule import Schedule
from harness.providers.kube import COMPACT, RESTART
from harness.pytest_plugin.kube import require_capability

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]

SUITE = "regressions-claims"
FILES = sorted(Path(__file__).parent.joinpath("regressions", "claims").glob("*.json"))
#: steps that are set-up, not a fault or trigger (left out of the verdict's "fault" column)
QUIET_OPS = ("create_claim", "heal")
#: the operator's seed in every replay (claim-set member names), as in the explorer's runs
SEED = 0


def _cases() -> list:
    out = []
    for f in FILES:
        saved = regress.load(f)
        if saved.schedule.bugs:
            out.append(pytest.param(f, True, id=f"buggy-{f.stem}"))
        out.append(pytest.param(f, False, id=f"fixed-{f.stem}"))
    return out


@pytest.mark.parametrize(("path", "buggy"), _cases())
def test_claims_regression(
    path: Path,
    buggy: bool,
    kube_cluster,
    kube_truth,
    kube_namespace,
    kubelet,
    kube_paths,
    claim_timing,
    reconverge_run,
    verdict,
    request,
):
    saved = regress.load(path)
    ops = {s.op for s in saved.schedule.steps}
    if "compact" in ops:
        require_capability(request, kube_cluster, COMPACT)
    if "apiserver_restart" in ops:
        require_capability(request, kube_cluster, RESTART)
    sched = saved.schedule if buggy else Schedule(saved.schedule.steps, world="claims")
    env = ClaimsEnv(
        cluster=kube_cluster,
        truth=kube_truth,
        namespace=kube_namespace,
        kubelet=kubelet,
        paths=kube_paths,
        timing=explore_timing(claim_timing),
        run_dir=reconverge_run.dir,
        seed=SEED,
    )
    result = Executor(env, sched).run()
    regress.judge_replay(
        verdict,
        suite=SUITE,
        path=path,
        saved=saved,
        result=result,
        buggy=buggy,
        fault="; ".join(s.describe() for s in sched.steps if s.op not in QUIET_OPS),
    )
