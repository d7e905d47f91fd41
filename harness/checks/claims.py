"""Convergence checks for the claim operator: bounded, with a diff, never a hang.

Three questions a seed-d case asks, each answered from the **truth** (the API server read
directly, bypassing every proxy), never from the operator's own view:

- :func:`converge` — does the namespace reach the expected state within N s? On timeout it
  raises :class:`NotConverged`: "did not converge in N s" and one line per difference.
- :func:`stuck` — has the operator *settled* (nothing queued, running or scheduled, and its
  caches equal the truth) while the symptom holds? An idle operator with current caches only
  moves on a new event, so this state is final: positive evidence, not a timeout.
- :func:`holds_for` — does the symptom hold for a whole window? For naive watch loops, whose
  caches never catch up (they stopped listening), "settled" cannot be established.

A :class:`Recorder` watches claims and pods directly and keeps every event, for symptoms
that are transient (a migrating claim that gets a deletionTimestamp and is gone a moment
later).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import urllib3
from kubernetes import watch as kwatch
from kubernetes.client.exceptions import ApiException

from harness import journal
from harness.errors import TooSlow
from harness.providers.kube.api import Kube, Resource
from harness.reconciler.claims import model as m
from harness.wait import wait_for

KINDS: dict[str, Resource] = {
    "pods": m.PODS,
    "cnclaims": m.CNCLAIMS,
    "cnclaimsets": m.CNCLAIMSETS,
    "cnpools": m.CNPOOLS,
}


class NotConverged(TooSlow):
    """The truth did not reach the expected state in time; the message carries the diff."""

    def __init__(self, what: str, waited: float, diff: list[str]) -> None:
        super().__init__(what, waited, None)
        self.diff = diff
        self.message = f"{what}: did not converge in {waited:.1f} s:\n  " + "\n  ".join(diff)
        self.args = (self.message,)


@dataclass
class World:
    """One read of a namespace: every object of the four kinds, by name."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    read_at: float = 0.0

    @classmethod
    def read(cls, truth: Kube, namespace: str) -> World:
        w = cls(read_at=time.monotonic())
        for plural, res in KINDS.items():
            items, _ = truth.list(res, namespace)
            w.objects[plural] = {m.name(o): o for o in items}
        return w

    def claim(self, name: str) -> dict[str, Any] | None:
        return self.objects["cnclaims"].get(name)

    def pod(self, name: str) -> dict[str, Any] | None:
        return self.objects["pods"].get(name)

    def claimset(self, name: str) -> dict[str, Any] | None:
        return self.objects["cnclaimsets"].get(name)

    def versions(self) -> dict[str, dict[str, str]]:
        return {k: {n: m.rv(o) for n, o in v.items()} for k, v in self.objects.items()}

    def summary(self) -> str:
        """A compact line per claim and pod, for messages and the journal."""
        parts = []
        for n, c in sorted(self.objects["cnclaims"].items()):
            st = c.get("status") or {}
            flags = " deleting" if m.deleting(c) else ""
            fins = ",".join(f.split("/")[-1] for f in m.finalizers(c))
            src = f" src={m.source_pod(c)}" if m.source_pod(c) else ""
            parts.append(
                f"claim {n}: phase={st.get('phase', '-')} pod={m.spec(c).get('podName') or '-'}"
                f"{src}{flags} fin=[{fins}]"
            )
        for n, p in sorted(self.objects["pods"].items()):
            lbl = m.labels(p)
            parts.append(
                f"pod {n}: {lbl.get(m.PHASE_LABEL, '-')} claimed-by={lbl.get(m.CLAIMED_BY, '-')}"
                f" status={p.get('status', {}).get('phase', '-')}"
            )
        return "; ".join(parts)


#: An expectation: the differences between a world and what it should be ([] = satisfied).
Expect = Callable[[World], list[str]]


# -- expectation builders -------------------------------------------------------------------
def all_of(*expects: Expect) -> Expect:
    def check(w: World) -> list[str]:
        return [d for e in expects for d in e(w)]

    return check


def claim_absent(name: str) -> Expect:
    def check(w: World) -> list[str]:
        c = w.claim(name)
        if c is None:
            return []
        return [
            f"claim {name}: expected gone, found deletionTimestamp="
            f"{c['metadata'].get('deletionTimestamp')} finalizers={m.finalizers(c)}"
        ]

    return check


def claim_present(name: str) -> Expect:
    def check(w: World) -> list[str]:
        c = w.claim(name)
        if c is None:
            return [f"claim {name}: expected present, it is gone"]
        if m.deleting(c):
            return [f"claim {name}: expected not deleting, has deletionTimestamp"]
        return []

    return check


def claim_bound(name: str, pod: str | None = None) -> Expect:
    """Bound to ``pod`` (any pod when None), that pod exists and is labelled ours."""

    def check(w: World) -> list[str]:
        c = w.claim(name)
        if c is None:
            return [f"claim {name}: expected Bound, it is gone"]
        phase = (c.get("status") or {}).get("phase")
        got = m.spec(c).get("podName") or ""
        out = []
        if phase != m.BOUND:
            out.append(f"claim {name}: phase {phase!r}, expected 'Bound'")
        if pod is not None and got != pod:
            out.append(f"claim {name}: spec.podName {got!r}, expected {pod!r}")
        if got:
            p = w.pod(got)
            if p is None:
                out.append(f"claim {name}: bound to pod {got} which does not exist")
            elif m.labels(p).get(m.CLAIMED_BY) != name:
                out.append(
                    f"pod {got}: claimed-by {m.labels(p).get(m.CLAIMED_BY)!r}, expected {name!r}"
                )
        elif pod is None:
            out.append(f"claim {name}: no spec.podName")
        return out

    return check


def claim_phase(name: str, phase: str, *, pod: str | None = None) -> Expect:
    """Phase ``phase`` (and ``spec.podName == pod`` when given); the pod may or may not exist."""

    def check(w: World) -> list[str]:
        c = w.claim(name)
        if c is None:
            return [f"claim {name}: expected phase {phase}, it is gone"]
        out = []
        got = (c.get("status") or {}).get("phase")
        if got != phase:
            out.append(f"claim {name}: phase {got!r}, expected {phase!r}")
        if pod is not None and (m.spec(c).get("podName") or "") != pod:
            out.append(f"claim {name}: spec.podName {m.spec(c).get('podName')!r}, expected {pod!r}")
        return out

    return check


def claim_finalizer(name: str, present: bool = True) -> Expect:
    def check(w: World) -> list[str]:
        c = w.claim(name)
        if c is None:
            return [f"claim {name}: gone"]
        has = m.CLAIM_FINALIZER in m.finalizers(c)
        return [] if has == present else [f"claim {name}: finalizer present={has}"]

    return check


def claim_deleting(name: str) -> Expect:
    def check(w: World) -> list[str]:
        c = w.claim(name)
        if c is None:
            return [f"claim {name}: gone"]
        return [] if m.deleting(c) else [f"claim {name}: no deletionTimestamp"]

    return check


def pod_absent(name: str) -> Expect:
    def check(w: World) -> list[str]:
        return [] if w.pod(name) is None else [f"pod {name}: still exists"]

    return check


def pod_label(name: str, key: str, value: str | None) -> Expect:
    def check(w: World) -> list[str]:
        p = w.pod(name)
        if p is None:
            return [f"pod {name}: expected label {key}={value}, pod is gone"]
        got = m.labels(p).get(key)
        return [] if got == value else [f"pod {name}: label {key}={got!r}, expected {value!r}"]

    return check


def claimset_replicas(name: str, replicas: int) -> Expect:
    def check(w: World) -> list[str]:
        s = w.claimset(name)
        got = (s or {}).get("status", {}).get("replicas")
        if got == replicas:
            return []
        return [f"claimset {name}: status.replicas {got}, expected {replicas}"]

    return check


# -- waits ---------------------------------------------------------------------------------------
def converge(truth: Kube, namespace: str, expect: Expect, *, timeout: float, what: str) -> World:
    """Wait until ``expect`` holds on the truth; return that world.

    Raises:
        NotConverged: the deadline passed; carries the last differences.
    """
    last: list[str] = ["never read"]
    t0 = time.monotonic()

    def probe() -> World | None:
        nonlocal last
        w = World.read(truth, namespace)
        last = expect(w)
        return w if not last else None

    try:
        w = wait_for(probe, timeout=timeout, what=what, interval=0.05)
    except TooSlow:
        journal.emit("check", "not_converged", what=what, diff=last)
        raise NotConverged(what, timeout, last) from None
    assert w is not None
    journal.emit("check", "converged", what=what, seconds=round(time.monotonic() - t0, 3))
    return w


class Settles(Protocol):
    """What :func:`stuck` needs from an operator."""

    def idle(self) -> bool: ...
    def cache_versions(self) -> dict[str, dict[str, str]]: ...
    def activity(self) -> int: ...
    def pending(self) -> dict[str, Any]: ...


def settled(op: Settles, truth: Kube, namespace: str) -> tuple[bool, World]:
    """(operator idle with caches equal to the truth, the world read).

    Activity is read before and after, so a reconcile that ran (and wrote) between the
    truth read and the cache read cannot make a moving operator look settled.
    """
    a1, idle1 = op.activity(), op.idle()
    w = World.read(truth, namespace)
    caches = op.cache_versions()
    ok = idle1 and op.idle() and op.activity() == a1 and caches == w.versions()
    return ok, w


def stuck(
    op: Settles, truth: Kube, namespace: str, symptom: Expect, *, timeout: float, what: str
) -> World:
    """Wait until the operator has settled *and* ``symptom`` holds (``symptom(w) == []``).

    Raises:
        TooSlow: not reached in time (last state, symptom diff and what is pending included).
    """
    last: dict[str, Any] = {}

    def probe() -> World | None:
        ok, w = settled(op, truth, namespace)
        diff = symptom(w)
        last.update(settled=ok, symptom=diff or "holds", pending=op.pending(), world=w.summary())
        return w if ok and not diff else None

    w = wait_for(probe, timeout=timeout, what=what, interval=0.05)
    assert w is not None
    journal.emit("check", "stuck", what=what, world=w.summary())
    return w


def holds_for(truth: Kube, namespace: str, symptom: Expect, *, seconds: float, what: str) -> World:
    """``symptom`` holds on every read for ``seconds``; returns the last world.

    Raises:
        AssertionError: the symptom stopped holding (the operator converged after all).
    """
    t0 = time.monotonic()
    state: dict[str, Any] = {}

    def probe() -> bool:
        w = World.read(truth, namespace)
        diff = symptom(w)
        state["world"] = w
        if diff:
            state["broke"] = diff
            return True
        return time.monotonic() - t0 >= seconds

    wait_for(probe, timeout=seconds + 30, what=what, interval=0.1)
    if "broke" in state:
        raise AssertionError(f"{what}: symptom stopped holding: {state['broke']}")
    w: World = state["world"]
    journal.emit("check", "held", what=what, seconds=seconds, world=w.summary())
    return w


# -- history -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """One event the recorder saw."""

    mono: float
    kind: str
    type: str
    name: str
    obj: dict[str, Any]


class Recorder:
    """Every claim and pod event of a namespace, read directly (no proxy, no failpoints)."""

    def __init__(self, truth: Kube, namespace: str, kinds: tuple[str, ...] = ("cnclaims", "pods")):
        self.truth = truth
        self.namespace = namespace
        self.kinds = kinds
        self.events: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready: dict[str, threading.Event] = {k: threading.Event() for k in kinds}
        self._watches: dict[str, kwatch.Watch] = {}
        self._threads = [
            threading.Thread(target=self._run, args=(k,), name=f"recorder-{k}", daemon=True)
            for k in kinds
        ]

    def start(self, timeout: float = 10.0) -> Recorder:
        for t in self._threads:
            t.start()
        for k, ev in self._ready.items():
            wait_for(ev.is_set, timeout=timeout, what=f"recorder watching {k}")
        return self

    def stop(self) -> None:
        self._stop.set()
        for w in list(self._watches.values()):
            w.stop()
        for t in self._threads:
            t.join(5)

    def _run(self, kind: str) -> None:
        res = KINDS[kind]
        _, rv = self.truth.list(res, self.namespace)
        fn = self.truth.list_function(res)
        self._ready[kind].set()
        while not self._stop.is_set():
            w = kwatch.Watch(return_type="object")
            self._watches[kind] = w
            try:
                for ev in w.stream(
                    fn,
                    self.namespace,
                    resource_version=rv,
                    timeout_seconds=60,
                    _request_timeout=(5, 10),
                ):
                    obj = ev.get("raw_object") or {}
                    meta = obj.get("metadata", {})
                    rv = meta.get("resourceVersion", rv)
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        with self._lock:
                            self.events.append(
                                Seen(time.monotonic(), kind, ev["type"], meta.get("name", ""), obj)
                            )
            except (urllib3.exceptions.HTTPError, OSError, ApiException):
                if self._stop.is_set():
                    return
                self._stop.wait(0.1)  # re-watch from the last resourceVersion

    def seen(self, pred: Callable[[Seen], bool]) -> list[Seen]:
        with self._lock:
            return [e for e in self.events if pred(e)]

    def wait_seen(self, pred: Callable[[Seen], bool], *, timeout: float, what: str) -> Seen:
        """The first event for which ``pred`` holds (waiting up to ``timeout``)."""
        found = wait_for(lambda: self.seen(pred), timeout=timeout, what=what, interval=0.02)
        return found[0]


# -- verdicts -------------------------------------------------------------------------------------
def judge(
    verdict: Any,
    *,
    suite: str,
    case: str,
    buggy: bool,
    fault: str,
    run: Callable[[], str],
) -> str:
    """Run a case's decisive step and record its verdict.

    ``run`` returns the symptom (buggy) or what converged (fixed) and raises when the
    expectation fails: a buggy variant that is not caught records MISSED, a fixed variant
    that does not converge records DIVERGED — and the case fails either way.
    """
    variant = "buggy" if buggy else "fixed"
    try:
        text = run()
    except (TooSlow, AssertionError) as exc:
        verdict.record(
            suite=suite,
            case=case,
            variant=variant,
            fault=fault,
            outcome="MISSED" if buggy else "DIVERGED",
            symptom=str(exc).splitlines()[0][:160],
        )
        raise
    verdict.record(
        suite=suite,
        case=case,
        variant=variant,
        fault=fault,
        outcome="CAUGHT" if buggy else "CONVERGED",
        symptom=text,
    )
    return text
