"""The claims world's invariants, as pure functions of one truth read (and what the
schedule itself did), so each can be unit-tested on a hand-made world.

Safety, after every step (the seed-d bugs violate these, the fixed operator never does):

- **one claim per pod**: two live claims Bound to one pod, where the operator made the
  binding — a pod the schedule's migration agent pointed a claim at is excluded for that
  claim (the migration agent may overwrite a label; issue #591 starts exactly so);
- **migrating claim kept**: a claim the schedule did not delete got a deletionTimestamp
  while Bound with ``spec.sourcePod`` set — its Finalize reclaims the pods mid-migration
  and the source's data is lost (PR #592 bug 2). Read from a direct watch of the truth
  (:class:`harness.checks.claims.Recorder`): the deleting state lasts milliseconds.

Convergence, after the heal (every fix on must reach all of these):

- **watch loops running**: no informer of the operator ended or crashed;
- **view = truth**: every operator cache holds exactly the truth's resourceVersions;
- **finalizers complete**: no deleting claim keeps the operator's finalizer (bug 1);
- **bound claims on a live pod**: a Bound claim's pod exists, is the incarnation the claim
  recorded (``status.store.serviceID`` = the pod's UID), and is not labelled as another
  claim's unless that claim names it too (bug 4 leaves a claim Bound to a gone pod);
- **lost claims released**: a Lost claim does not name a pod that does not exist (bug 3;
  Lost naming a live pod in a terminal phase is the upstream residual gap, accepted);
- **pending claims bound**: no claim Pending while an Idle pod it could take exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.checks.claims import Seen, World
from harness.reconciler.claims import model as m
from harness.verdict import Finding

ONE_CLAIM_PER_POD = "safety: one claim per pod"
MIGRATING_KEPT = "safety: migrating claim kept"
LOOPS = "convergence: watch loops running"
VIEW = "convergence: view = truth"
FINALIZED = "convergence: finalizers complete"
BOUND = "convergence: bound claims on a live pod"
LOST = "convergence: lost claims released"
PENDING = "convergence: pending claims bound"
CONVERGENCE = (LOOPS, VIEW, FINALIZED, BOUND, LOST, PENDING)


def _phase(c: dict[str, Any]) -> str:
    return str((c.get("status") or {}).get("phase") or "")


def _live(w: World) -> list[dict[str, Any]]:
    return [c for _, c in sorted(w.objects["cnclaims"].items()) if not m.deleting(c)]


def double_bound(w: World, migrated: Mapping[str, str]) -> list[str]:
    """Pods two live Bound claims hold where the operator made the binding."""
    by_pod: dict[str, list[str]] = {}
    for c in _live(w):
        pod = m.spec(c).get("podName") or ""
        if pod and _phase(c) == m.BOUND and migrated.get(m.name(c)) != pod:
            by_pod.setdefault(pod, []).append(m.name(c))
    return [
        f"{' and '.join(names)} both Bound to {pod}"
        for pod, names in sorted(by_pod.items())
        if len(names) > 1
    ]


def migrating_deleted(events: Iterable[Seen], deleted: Iterable[str]) -> list[str]:
    """Claims the schedule did not delete that got a deletionTimestamp while Bound and
    migrating (first sighting per claim)."""
    mine = set(deleted)
    out: dict[str, str] = {}
    for e in events:
        obj = e.obj
        if e.kind != "cnclaims" or e.name in mine or e.name in out:
            continue
        src = m.source_pod(obj)
        if m.deleting(obj) and src and _phase(obj) == m.BOUND:
            out[e.name] = (
                f"{e.name} got a deletionTimestamp while Bound to "
                f"{m.spec(obj).get('podName')} and migrating from {src}"
            )
    return list(out.values())


def idle_pods(w: World) -> list[str]:
    """Pods a Pending claim could take: Idle, not deleting, named by no claim's spec."""
    named = {m.spec(c).get("podName") for c in w.objects["cnclaims"].values()}
    return [
        n
        for n, p in sorted(w.objects["pods"].items())
        if m.labels(p).get(m.PHASE_LABEL) == m.POD_IDLE
        and not m.deleting(p)
        and m.OUTDATED not in m.labels(p)
        and n not in named
    ]


def _finding(name: str, problems: list[str]) -> Finding:
    if not problems:
        return Finding(name, True)
    return Finding(name, False, "; ".join(problems)[:240], details=problems)


def convergence(
    w: World,
    caches: Mapping[str, Mapping[str, str]] | None,
    loops: Mapping[str, str],
) -> list[Finding]:
    """The convergence findings for one truth read; ``caches`` is None when no operator
    runs, ``loops`` maps each informer to its watch-loop state."""
    out = [
        _finding(
            LOOPS,
            [f"{k} watch loop {s}" for k, s in sorted(loops.items()) if s in ("ended", "crashed")],
        )
    ]
    if caches is None:
        out.append(_finding(VIEW, ["the operator is not running"]))
    else:
        truth = w.versions()
        diff = []
        for kind in sorted(set(truth) | set(caches)):
            have, want = dict(caches.get(kind, {})), truth.get(kind, {})
            for n in sorted(set(have) | set(want)):
                if have.get(n) != want.get(n):
                    got, real = have.get(n) or "-", want.get(n) or "-"
                    diff.append(f"{kind}/{n}: operator {got}, truth {real}")
        out.append(_finding(VIEW, diff))
    claims = w.objects["cnclaims"]
    out.append(
        _finding(
            FINALIZED,
            [
                f"{n} deleting, finalizer {m.CLAIM_FINALIZER} still present"
                for n, c in sorted(claims.items())
                if m.deleting(c) and m.CLAIM_FINALIZER in m.finalizers(c)
            ],
        )
    )
    live = _live(w)
    naming: dict[str, set[str]] = {}
    for c in live:
        naming.setdefault(m.spec(c).get("podName") or "", set()).add(m.name(c))
    bound, lost, pending = [], [], []
    idle = idle_pods(w)
    for c in live:
        me, phase, pod_name = m.name(c), _phase(c), m.spec(c).get("podName") or ""
        pod = w.pod(pod_name) if pod_name else None
        if phase == m.BOUND:
            if not pod_name:
                bound.append(f"{me} Bound without spec.podName")
            elif pod is None:
                bound.append(f"{me} Bound to {pod_name}, which is gone")
            else:
                uid = pod["metadata"].get("uid", "")
                claimed = ((c.get("status") or {}).get("store") or {}).get("serviceID", "")
                holder = m.labels(pod).get(m.CLAIMED_BY)
                if claimed and claimed != uid:
                    bound.append(
                        f"{me} Bound to {pod_name} UID {uid[:8]}, but claimed UID {claimed[:8]}"
                    )
                if holder and holder not in naming.get(pod_name, set()):
                    bound.append(f"{me} Bound to {pod_name}, which is claimed by {holder}")
        elif phase == m.LOST:
            if pod_name and pod is None:
                lost.append(f"{me} Lost, spec.podName={pod_name} (no such pod)")
        elif phase in ("", m.PENDING) and idle:
            pending.append(f"{me} {phase or 'new'} while {idle[0]} is Idle")
    out += [_finding(BOUND, bound), _finding(LOST, lost), _finding(PENDING, pending)]
    return out
