"""The claims world's invariants on hand-made truth reads: each bug's end state fails
exactly its check, the fixed operator's end states (including the ones a schedule's own
migration leaves) pass."""

from __future__ import annotations

from typing import Any

from harness.checks.claims import Seen, World
from harness.explore.claims import invariants as inv
from harness.reconciler.claims import model as m


def claim(name: str, pod: str = "", phase: str = m.BOUND, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": "1", "finalizers": []}
    if extra.get("deleting"):
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        meta["finalizers"] = [m.CLAIM_FINALIZER]
    spec: dict[str, Any] = {"podName": pod}
    if extra.get("source"):
        spec["sourcePod"] = {"podName": extra["source"]}
    status: dict[str, Any] = {"phase": phase}
    if extra.get("uid"):
        status["store"] = {"serviceID": extra["uid"]}
    return {"metadata": meta, "spec": spec, "status": status}


def pod(name: str, phase: str = m.POD_BOUND, by: str | None = None, uid: str = "") -> dict:
    labels = {m.PHASE_LABEL: phase, **({m.CLAIMED_BY: by} if by else {})}
    return {
        "metadata": {"name": name, "resourceVersion": "1", "uid": uid or name, "labels": labels}
    }


def world(claims: list[dict], pods: list[dict]) -> World:
    return World(
        objects={
            "cnclaims": {m.name(c): c for c in claims},
            "pods": {m.name(p): p for p in pods},
            "cnclaimsets": {},
            "cnpools": {},
        }
    )


def failed(w: World, caches: Any = "truth", loops: Any = None) -> list[str]:
    view = w.versions() if caches == "truth" else caches
    return [f.check for f in inv.convergence(w, view, loops or {}) if not f.ok]


def test_a_converged_world_passes():
    w = world(
        [claim("c0", "pod-0", uid="pod-0")], [pod("pod-0", by="c0"), pod("pod-1", m.POD_IDLE)]
    )
    assert failed(w) == []


def test_each_seed_d_end_state_fails_its_own_check():
    gone = world([claim("c0", "pod-0", uid="pod-0")], [pod("pod-1", m.POD_IDLE)])
    assert failed(gone) == [inv.BOUND]  # bug 4: Bound to a pod that is gone
    lost = world([claim("c0", "pod-0", m.LOST)], [pod("pod-1", m.POD_IDLE)])
    assert failed(lost) == [inv.LOST]  # bug 3: Lost with a dead podName
    stuck = world([claim("c0", "pod-1", deleting=True)], [pod("pod-1", by="c0")])
    assert failed(stuck) == [inv.FINALIZED]  # bug 1: the finalizer stays
    w = world([], [pod("pod-0", m.POD_IDLE)])
    stale = {"pods": {}, "cnclaims": {}, "cnclaimsets": {}, "cnpools": {}}
    assert failed(w, stale) == [inv.VIEW]  # a watch loop that stopped hearing
    assert failed(w, loops={"pods": "ended"}) == [inv.LOOPS]
    assert failed(w, None) == [inv.VIEW]


def test_a_pending_claim_with_an_idle_pod_fails_and_without_one_passes():
    w = world([claim("c0", "", m.PENDING)], [pod("pod-0", m.POD_IDLE)])
    assert failed(w) == [inv.PENDING]
    assert failed(world([claim("c0", "", m.PENDING)], [pod("pod-0", m.POD_DRAINING)])) == []


def test_a_recreated_pod_is_not_the_claimed_incarnation():
    w = world([claim("c0", "pod-0", uid="old")], [pod("pod-0", by="c0", uid="new")])
    assert failed(w) == [inv.BOUND]


def test_the_states_a_migration_agent_leaves_are_accepted():
    # c0 pointed at c1's pod (issue #591's overwrite): both name it, the label says c0
    both = world(
        [claim("c0", "pod-1", source="pod-0"), claim("c1", "pod-1")],
        [pod("pod-0", m.POD_DRAINING), pod("pod-1", by="c0")],
    )
    assert failed(both) == []
    # the fix released the label of a deleted claim: the holder keeps an unlabelled pod
    assert failed(world([claim("c1", "pod-1")], [pod("pod-1")])) == []
    # a terminal pod: Lost naming a pod that exists is the upstream residual gap
    assert failed(world([claim("c0", "pod-0", m.LOST)], [pod("pod-0", by="c0")])) == []
    # but a pod labelled for a claim that does not name it is not the Bound claim's
    other = world([claim("c1", "pod-1")], [pod("pod-1", by="c7")])
    assert failed(other) == [inv.BOUND]


def test_double_bound_excludes_what_the_schedule_did():
    w = world([claim("c0", "pod-1"), claim("c1", "pod-1")], [pod("pod-1", by="c0")])
    assert inv.double_bound(w, {}) == ["c0 and c1 both Bound to pod-1"]
    assert inv.double_bound(w, {"c0": "pod-1"}) == []
    lost = world([claim("c0", "pod-1", m.LOST), claim("c1", "pod-1")], [pod("pod-1", by="c1")])
    assert inv.double_bound(lost, {}) == []


def test_migrating_deleted_needs_a_bound_migrating_claim_the_schedule_did_not_delete():
    hit = claim("s0-a", "pod-2", source="pod-0", deleting=True)
    lost = claim("s0-b", "pod-3", m.LOST, source="pod-1", deleting=True)
    plain = claim("s0-c", "pod-4", deleting=True)
    events = [Seen(0.0, "cnclaims", "MODIFIED", m.name(c), c) for c in (hit, lost, plain)]
    assert inv.migrating_deleted(events, ()) == [
        "s0-a got a deletionTimestamp while Bound to pod-2 and migrating from pod-0"
    ]
    assert inv.migrating_deleted(events, ("s0-a",)) == []
    # lost on the way and rebound: its deletion while migrating is still a violation (the
    # set deleting it from a stale cache was write_without_precondition)
    was_lost = claim("s0-a", "", m.LOST, source="pod-0")
    seen = [Seen(0.0, "cnclaims", "MODIFIED", "s0-a", was_lost), events[0]]
    assert len(inv.migrating_deleted(seen, ())) == 1


def test_idle_pods_exclude_named_and_deleting_pods():
    p = pod("pod-2", m.POD_IDLE)
    p["metadata"]["deletionTimestamp"] = "x"
    w = world([claim("c0", "pod-0")], [pod("pod-0", m.POD_IDLE), pod("pod-1", m.POD_IDLE), p])
    assert inv.idle_pods(w) == ["pod-1"]
