"""Scale-in victim order (``claimDeletionOrder``) and the migrating-claim switch."""

from __future__ import annotations

import random
from collections import Counter

from harness.providers.kube.endpoint import Endpoint
from harness.providers.kube.kubeconfig import Credentials
from harness.reconciler.claims import bugs as B
from harness.reconciler.claims import model as m
from harness.reconciler.claims.context import Ctx
from harness.reconciler.claims.scalein import scale_in, sort_claims_to_delete
from harness.reconciler.claims.store import CNStore
from harness.reconciler.claims.timing import Timing
from harness.reconciler.claims.watch import Informer


def _informer(res, objs):
    inf = Informer(
        res,
        "ns",
        Endpoint(Credentials(server="https://127.0.0.1:1"), name="unused"),
        timing=Timing(),
        bugs=B.Bugs(),
        handler=lambda *a: None,
    )
    inf.cache = {o["metadata"]["name"]: o for o in objs}
    return inf


def _pod(name, *, cost=None, ready=True, node="n1", created="2026-01-01T00:00:00Z"):
    ann = {m.DELETION_COST: str(cost)} if cost is not None else {}
    return {
        "metadata": {"name": name, "annotations": ann, "creationTimestamp": created},
        "spec": {"nodeName": node},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _claim(name, pod, *, phase=m.BOUND, src=None):
    spec = {"podName": pod}
    if src:
        spec["sourcePod"] = {"podName": src}
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
        "status": {"phase": phase},
    }


class _Deleter:
    def __init__(self):
        self.deleted = []


def _ctx(pods, claims, bugs=()):
    ctx = Ctx(
        namespace="ns",
        api=Endpoint(Credentials(server="https://127.0.0.1:1"), name="unused"),
        bugs=B.Bugs(bugs),
        timing=Timing(),
        store=CNStore(),
        pods=_informer(m.PODS, pods),
        claims=_informer(m.CNCLAIMS, claims),
        claimsets=_informer(m.CNCLAIMSETS, []),
        pools=_informer(m.CNPOOLS, []),
        rng=random.Random(0),
        stats=Counter(),
    )
    deleted = []
    ctx.delete = lambda res, name: deleted.append(name)  # type: ignore[method-assign]
    # scale-in deletes with preconditions on the cached copy (delete_decided)
    ctx.delete_decided = lambda res, obj: deleted.append(m.name(obj))  # type: ignore[method-assign]
    ctx.log = lambda *a, **k: None  # type: ignore[method-assign]
    return ctx, deleted


def test_order_podless_first_then_cost_then_readiness():
    pods = [_pod("p1"), _pod("p2", cost=-100), _pod("p3", ready=False), _pod("p4", node="")]
    claims = [
        _claim("c1", "p1"),
        _claim("c2", "p2"),
        _claim("c3", "p3"),
        _claim("c4", "p4"),
        _claim("c5", "gone"),
        _claim("c6", "", phase=m.PENDING),
    ]
    ctx, _ = _ctx(pods, claims)
    order = [c["metadata"]["name"] for c in sort_claims_to_delete(ctx, claims)]
    assert order[:2] == ["c6", "c5"]  # no pod: Pending before Bound
    assert order[2] == "c4"  # unscheduled pod
    assert order[3] == "c3"  # NotReady before Ready
    assert order[4:] == ["c2", "c1"]  # lower deletion cost first


def test_fixed_skips_migrating_claim():
    pods = [_pod("pa", cost=-100), _pod("pb"), _pod("p0")]
    claims = [_claim("s-aaaaa", "pa", src="p0"), _claim("s-bbbbb", "pb")]
    ctx, deleted = _ctx(pods, claims)
    left = scale_in(ctx, {"metadata": {"name": "s"}}, claims, 1)
    assert deleted == ["s-bbbbb"]
    assert [c["metadata"]["name"] for c in left] == ["s-aaaaa"]


def test_fixed_deletes_nothing_when_all_migrate():
    claims = [_claim("a", "pa", src="x"), _claim("b", "pb", src="y")]
    ctx, deleted = _ctx([_pod("pa"), _pod("pb")], claims)
    assert len(scale_in(ctx, {"metadata": {"name": "s"}}, claims, 1)) == 2
    assert deleted == []


def test_buggy_picks_the_migrating_claim():
    pods = [_pod("pa", cost=-100), _pod("pb"), _pod("p0")]
    claims = [_claim("s-aaaaa", "pa", src="p0"), _claim("s-bbbbb", "pb")]
    ctx, deleted = _ctx(pods, claims, bugs={B.SCALEIN_INCLUDES_MIGRATING})
    scale_in(ctx, {"metadata": {"name": "s"}}, claims, 1)
    assert deleted == ["s-aaaaa"]
