"""Checks for the claim operator: findings from the truth, bounded, never a hang.

Every question a seed-d case asks is answered from the **truth** (the API server read
directly, bypassing every proxy), never from the operator's own view, and the answer is a
list of :class:`harness.verdict.Finding` values that ``verdict.judge`` decides on (the rules
live in :mod:`harness.verdict`, not here).

- :func:`observe` — the decisive step of a case. It polls the truth and evaluates the case's
  :data:`Check` functions until the state is *final*, and says which kind of final it was
  (the ``end`` finding): ``converged`` (every check ok, operator quiescent, held for a
  window), ``settled`` (the operator is idle with caches equal to the truth and the
  findings have not changed for a while — it only moves again on a new event, so this is
  positive evidence), a case's own ``final`` evidence (``looping``: Finalize retried N
  times without the truth changing; ``held``: a naive watch loop's symptom held for a whole
  window; ``seen``: a transient symptom was recorded), or ``timeout`` (still moving — never
  evidence of a bug). If the API server does not answer for the whole window (or at its
  end), the result is a finding with ``observed=False``: INCONCLUSIVE, never CAUGHT.
- :func:`converge` / :func:`stuck` — set-up steps before the trigger (a failure there is
  an error of the case, not a verdict).
- :class:`Recorder` — every claim and pod event, read directly, for transient symptoms (a
  migrating claim that gets a deletionTimestamp and is gone a moment later).
- :func:`journaled` — how often the operator (or anyone) journaled an event since the case
  began: the evidence that a case's fault reached the code its switch guards.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import watch as kwatch
from kubernetes.client.exceptions import ApiException

from harness import journal
from harness.errors import TooSlow
from harness.journal import merge
from harness.providers.kube.api import Kube, Resource
from harness.reconciler.claims import model as m
from harness.verdict import Finding, Unobservable
from harness.wait import wait_for

KINDS: dict[str, Resource] = {
    "pods": m.PODS,
    "cnclaims": m.CNCLAIMS,
    "cnclaimsets": m.CNCLAIMSETS,
    "cnpools": m.CNPOOLS,
}


#: what a truth read raises when the API server is not there (the client's transport errors)
_TRANSPORT = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 160 else text[:157] + "..."


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
    def read(
        cls, truth: Kube, namespace: str, *, timeout: tuple[float, float] | None = None
    ) -> World:
        """Read every kind of ``namespace`` from ``truth``.

        Raises:
            Unobservable: the API server did not answer (refused, reset, timed out, TLS
                failure, or a 5xx/429 — the server is there but cannot read its storage).
        """
        w = cls(read_at=time.monotonic())
        for plural, res in KINDS.items():
            try:
                out = truth.request("GET", res.path(namespace), timeout=timeout)
            except ApiException as exc:
                if exc.status in (0, 429) or (exc.status or 0) >= 500:
                    raise Unobservable(f"GET {plural}: {exc.status} {exc.reason}") from None
                raise
            except _TRANSPORT as exc:
                raise Unobservable(f"GET {plural}: {_short(exc)}") from None
            w.objects[plural] = {m.name(o): o for o in out.get("items") or []}
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


def settled(
    op: Settles, truth: Kube, namespace: str, *, timeout: tuple[float, float] | None = None
) -> tuple[bool, World]:
    """(operator idle with caches equal to the truth, the world read).

    Activity is read before and after, so a reconcile that ran (and wrote) between the
    truth read and the cache read cannot make a moving operator look settled.

    Raises:
        Unobservable: the truth did not answer.
    """
    a1, idle1 = op.activity(), op.idle()
    w = World.read(truth, namespace, timeout=timeout)
    caches = op.cache_versions()
    ok = idle1 and op.idle() and op.activity() == a1 and caches == w.versions()
    return ok, w


def settle(
    op: Settles, truth: Kube, namespace: str, expect: Expect, *, timeout: float, what: str
) -> World:
    """Set-up step: wait until the operator has settled *and* ``expect`` holds.

    Raises:
        TooSlow: not reached in time (last state, symptom diff and what is pending included).
    """
    last: dict[str, Any] = {}

    def probe() -> World | None:
        ok, w = settled(op, truth, namespace)
        diff = expect(w)
        last.update(settled=ok, diff=diff or "holds", pending=op.pending(), world=w.summary())
        return w if ok and not diff else None

    w = wait_for(probe, timeout=timeout, what=what, interval=0.05)
    assert w is not None
    journal.emit("check", "settled", what=what, world=w.summary())
    return w


# -- findings: what the decisive step of a case reports ---------------------------------------
#: A check: one narrow fact about a world, as a finding (``ok`` = as the fixed operator
#: leaves it). Checks may also read the operator's counters or a :class:`Recorder`.
Check = Callable[[World], Finding]

#: The ``end`` finding's name: how an observation ended (see :func:`observe`).
END = "end"


def fact(name: str, expect: Expect, symptom: str | None = None) -> Check:
    """A check from an expectation: ok when ``expect`` finds no difference.

    ``symptom`` (when given) is the one-line text of the bad state, the differences go to
    the details.
    """

    def check(w: World) -> Finding:
        diff = expect(w)
        if not diff:
            return Finding(name, True)
        return Finding(name, False, symptom or "; ".join(diff)[:200], details=diff)

    return check


def never(name: str, bad: Expect, symptom: str) -> Check:
    """A check that is *not* ok exactly when ``bad`` holds (``bad(w) == []``): a signature fact.

    Why the inversion: a seed's signature is a specific bad state ("Lost with a dead
    podName"); the check names that state, so a symptom predicate can demand it and a
    buggy run that fails in some other way does not satisfy it.
    """

    def check(w: World) -> Finding:
        if bad(w):
            return Finding(name, True)
        return Finding(name, False, symptom, details=[w.summary()])

    return check


def counter(name: str, read: Callable[[], int], ok: Callable[[int], bool], symptom: str) -> Check:
    """A check on an operator counter; ``symptom`` may use ``{n}``."""

    def check(_: World) -> Finding:
        n = read()
        return Finding(name, True) if ok(n) else Finding(name, False, symptom.format(n=n))

    return check


def ended(findings: Mapping[str, Finding], *kinds: str) -> bool:
    """Did the observation end in one of ``kinds`` (``settled``, ``looping``, ...)?"""
    f = findings.get(END)
    return f is not None and f.observed and bool(f.details) and f.details[0] in kinds


def failing(findings: Mapping[str, Finding], *names: str) -> bool:
    """Are all of ``names`` present, observed and not ok? (For symptom predicates.)"""
    return all(n in findings and findings[n].observed and not findings[n].ok for n in names)


def holding(findings: Mapping[str, Finding], *names: str) -> bool:
    """Are all of ``names`` present, observed and ok?"""
    return all(n in findings and findings[n].observed and findings[n].ok for n in names)


@dataclass
class Observation:
    """What :func:`observe` saw: the findings (``end`` among them), the last world read."""

    findings: list[Finding]
    end: str
    world: World | None
    seconds: float

    def by_check(self) -> dict[str, Finding]:
        return {f.check: f for f in self.findings}

    def __str__(self) -> str:
        return "\n".join(str(f) for f in self.findings)


#: ``final(findings, world, stable_seconds)`` -> a one-line reason when the state is final by
#: the case's own evidence (e.g. "7 Finalize passes without a change"), else None;
#: ``stable_seconds`` is how long every check's ok/not-ok has been unchanged.
Final = Callable[[Mapping[str, Finding], World, float], "str | None"]


def observe(
    truth: Kube,
    namespace: str,
    checks: Sequence[Check],
    *,
    timeout: float,
    what: str,
    op: Settles | None = None,
    final: Final | None = None,
    final_end: str = "held",
    quiet: float = 1.0,
    hold: float = 0.5,
    interval: float = 0.05,
) -> Observation:
    """Poll the truth until the state is final; return the findings and how it ended.

    Ends (the ``end`` finding's first detail):

    - ``converged``: every check ok, the operator quiescent (when ``op`` is given: idle,
      caches equal to the truth), and both held for ``hold`` seconds — a write that lands a
      moment later is looked at;
    - ``settled``: ``op`` idle with caches equal to the truth and the checks' verdicts
      unchanged for ``quiet`` seconds (an idle operator only moves on a new event);
    - ``final_end`` (``held``, ``looping``, ``seen``): ``final`` gave a reason;
    - ``timeout``: none of these within ``timeout`` — the ``end`` finding is not ok;
    - ``blind``: the truth never answered in the window, or did not answer at its end —
      the findings are a single unobservable ``truth`` finding (INCONCLUSIVE).

    A probe on which the truth did not answer resets every "for N seconds" clock: nothing
    unseen is counted as held.
    """
    t0 = time.monotonic()
    st: dict[str, Any] = {"reads": 0, "error": "", "world": None, "findings": [], "sig": None}
    st["since"] = t0  # when the checks' verdicts last changed
    st["calm"] = None  # since when settled (op given) or all ok, continuously

    def probe() -> str | None:
        # wait_for treats a raising probe as "not yet": a harness bug (a check raising, a
        # 403 from the truth) must end the observation as an error, not as a quiet timeout
        try:
            return step()
        except Exception as exc:
            st["crash"] = exc
            return "crash"

    def step() -> str | None:
        remaining = max(0.2, t0 + timeout - time.monotonic())
        per_read = (min(2.0, remaining), min(5.0, remaining))
        now = time.monotonic()
        try:
            if op is not None:
                quiescent, w = settled(op, truth, namespace, timeout=per_read)
            else:
                quiescent, w = True, World.read(truth, namespace, timeout=per_read)
        except Unobservable as exc:
            st.update(error=str(exc), last_failed=True, calm=None, since=time.monotonic())
            st["sig"] = None
            return None
        st.update(reads=st["reads"] + 1, world=w, last_failed=False)
        found = [c(w) for c in checks]
        st["findings"] = found
        if any(not f.observed for f in found):
            st.update(calm=None, since=now, sig=None)
            return None
        sig = tuple((f.check, f.ok) for f in found)
        if sig != st["sig"]:
            st.update(sig=sig, since=now, calm=None)
        stable = now - st["since"]
        if quiescent:
            st["calm"] = st["calm"] if st["calm"] is not None else now
        else:
            st["calm"] = None
        calm = now - st["calm"] if st["calm"] is not None else -1.0
        if all(f.ok for f in found):
            return "converged" if calm >= hold else None
        if final is not None:
            reason = final({f.check: f for f in found}, w, stable)
            if reason:
                st["reason"] = reason
                return final_end
        if op is not None and calm >= quiet and stable >= quiet:
            return "settled"
        return None

    try:
        end = wait_for(probe, timeout=timeout, what=what, interval=interval)
    except TooSlow:
        end = "blind" if st["reads"] == 0 or st.get("last_failed") else "timeout"
    if end == "crash":
        raise st["crash"]
    took = time.monotonic() - t0
    w: World | None = st["world"]
    if end == "blind":
        why = "never answered" if st["reads"] == 0 else "stopped answering"
        f = Finding(
            "truth",
            False,
            f"API server {why} in the {timeout:.0f}s window: {st['error']}",
            details=[f"{st['reads']} good reads"],
            observed=False,
        )
        obs = Observation([f], end, w, took)
    else:
        findings = list(st["findings"])
        if end == "timeout":
            pending = op.pending() if op is not None else {}
            text = f"still moving after {timeout:.0f}s (no settle, no final evidence)"
            findings.append(Finding(END, False, text, details=[end, f"pending={pending}"]))
        else:
            text = {
                "converged": f"converged in {took:.1f}s, held {hold:.1f}s",
                "settled": f"operator settled (idle, caches = truth) for {quiet:.1f}s",
            }.get(end, st.get("reason", end))
            findings.append(Finding(END, True, text, details=[end]))
        obs = Observation(findings, end, w, took)
    journal.emit(
        "check",
        "observed",
        what=what,
        end=end,
        seconds=round(took, 3),
        findings=[x.summary() for x in obs.findings],
        world=w.summary() if w is not None else "",
    )
    return obs


def journaled(run_dir: Path | str, since: float, component: str, event: str, **fields: Any) -> int:
    """How many ``component``/``event`` records with these fields were journaled since ``since``.

    The evidence a case's fault reached the code its switch guards (the operator journals
    each decision: ``claims`` records), or that the watch loop saw a 410 and re-listed.
    """
    return len(merge.find(run_dir, after=since, component=component, event=event, **fields))


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
    """Every claim and pod event of a namespace, read directly (no proxy, no failpoints).

    It also knows when it could *not* see: :meth:`blind` names a kind whose watch could
    not be re-opened (API server not answering) or whose history was lost (410 Gone), so
    "the event was never seen" is never claimed from a recorder that was not looking.
    """

    def __init__(self, truth: Kube, namespace: str, kinds: tuple[str, ...] = ("cnclaims", "pods")):
        self.truth = truth
        self.namespace = namespace
        self.kinds = kinds
        self.events: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready: dict[str, threading.Event] = {k: threading.Event() for k in kinds}
        self._watches: dict[str, kwatch.Watch] = {}
        self._down: dict[str, tuple[float, str]] = {}  # kind -> (since, why) while unwatched
        self._lost: dict[str, str] = {}  # kind -> why its history has a hole (410)
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

    def blind(self) -> str | None:
        """Why the recorder may have missed events right now (None: it saw everything)."""
        with self._lock:
            if self._lost:
                kind, why = next(iter(self._lost.items()))
                return f"recorder lost {kind} history: {why}"
            if self._down:
                kind, (since, why) = next(iter(self._down.items()))
                return f"recorder not watching {kind} for {time.monotonic() - since:.1f}s: {why}"
        return None

    def _run(self, kind: str) -> None:
        res = KINDS[kind]
        _, rv = self.truth.list(res, self.namespace)
        list_fn = self.truth.list_function(res)

        def fn(*args: Any, **kw: Any) -> Any:
            resp = list_fn(*args, **kw)  # returns once the server accepted the watch
            with self._lock:
                self._down.pop(kind, None)
            return resp

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
            except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
                if self._stop.is_set():
                    return
                with self._lock:
                    if isinstance(exc, ApiException) and exc.status == 410:
                        self._lost[kind] = f"410 Gone at rv {rv}"
                        return
                    self._down.setdefault(kind, (time.monotonic(), _short(exc)))
                self._stop.wait(0.1)  # re-watch from the last resourceVersion

    def seen(self, pred: Callable[[Seen], bool]) -> list[Seen]:
        with self._lock:
            return [e for e in self.events if pred(e)]

    def wait_seen(self, pred: Callable[[Seen], bool], *, timeout: float, what: str) -> Seen:
        """The first event for which ``pred`` holds (waiting up to ``timeout``)."""
        found = wait_for(lambda: self.seen(pred), timeout=timeout, what=what, interval=0.02)
        return found[0]
