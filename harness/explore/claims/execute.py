"""Run one claims-world schedule on the real API server and judge it (issue #12 §2).

The world is a :class:`harness.explore.claims.world.ClaimsEnv`: a namespace of its own on
the run's etcd + kube-apiserver, the ``api`` and ``watch`` toxiproxy proxies the operator
dials (the ``kube_paths`` fixture's), the fake kubelet and a truth client that bypasses
every proxy. Each schedule starts from the same state: five Idle pool pods and a freshly
started operator (the schedule's bug switches, the suites' time scale).

Logical time: a step is one action of the harness (as user, migration agent, kubelet or
fault); it ends when the operator is quiescent — nothing queued or running, every cache
equal to the truth, the truth unchanged for :data:`QUIET_S` — bounded by
:data:`STEP_BOUND_S` (a step still busy then is journaled as such and the schedule goes
on). Requeue timers may be pending: a migrating claim requeues itself for as long as its
source drains, a Finalize that does not complete retries every 2 s (scaled).

Safety after every step and convergence after the heal are
:mod:`harness.explore.claims.invariants`; a truth that cannot be read makes the run
INCONCLUSIVE, never a pass, never a failure. A safety violation ends the schedule.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

import failpoints
from harness import journal
from harness.checks import claims as chk
from harness.checks import faults
from harness.errors import ProviderFailed, TooSlow
from harness.explore import schedule as S
from harness.explore.claims import invariants as inv
from harness.explore.claims import steps as C
from harness.explore.claims.world import ClaimsEnv
from harness.explore.result import Result, StepRecord, judge
from harness.reconciler.claims import ClaimOperator, CNStore
from harness.reconciler.claims import model as m
from harness.reconciler.claims.objects import create_claim, create_claimset, pod_labels
from harness.verdict import Finding, Outcome, Unobservable
from harness.wait import wait_for

#: how long one step may take to become quiescent before the schedule moves on
STEP_BOUND_S = 4.0
#: the truth must stay unchanged this long (with the operator idle) for a step to end
QUIET_S = 0.3
#: after the heal: how long the world has to converge, and how long it must hold
CONVERGE_S = 8.0
HOLD_S = 1.0
#: past the operator's watch read timeout before the end may pass (see ``_end``)
CYCLE_MARGIN_S = 0.5
#: a failing end state is final once the operator is idle (no timer either: it only
#: moves again on a watch event), its caches equal the truth and the findings have not
#: changed for this long — like ``checks.claims.observe``'s "settled"
SETTLED_S = 1.5
#: bound on an operator start (list + first watch of four informers)
START_S = 5.0
#: per truth read (connect, read): a read that outlives it is "unobservable"
READ = (2.0, 5.0)


#: answers of a step that changed nothing (its trigger did not happen)
NO_EFFECT = ("no such claim", "no such pod", "nothing to migrate", "no target pod")
NO_EFFECT += ("no such revision",)


def _answer(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"refused: {exc.status} {exc.reason}"[:160]
    return f"failed: {type(exc).__name__}: {exc}"[:160]


class Executor:
    """Runs the steps of one schedule against one :class:`ClaimsEnv`."""

    def __init__(self, env: ClaimsEnv, schedule: S.Schedule) -> None:
        self.env = env
        self.schedule = schedule
        self.store = CNStore()
        self.op: ClaimOperator | None = None
        self.down = False  # the operator was stopped and could not start again yet
        self.recorder: chk.Recorder | None = None
        self.deleted: set[str] = set()  # claims the schedule deleted
        self.migrated: dict[str, str] = {}  # claim -> the pod the migration agent named
        self.watch_proxy = env.paths.watch_proxy  # where new watch connections go now
        self.toxics: list[tuple[Any, str, C.Toxic, dict[str, int]]] = []
        self.disabled: list[tuple[Any, C.Toxic, dict[str, int]]] = []
        self.silenced: list[tuple[Any, str]] = []  # half-open: never healed
        self.seen_effects: set[str] = set()
        self.intakes: set[str] = set()
        self.violations: list[Finding] = []
        self.op_started = 0.0

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Result:
        env = self.env
        t0 = since = time.monotonic()
        journal.emit("explore", "schedule", namespace=env.namespace, steps=len(self.schedule))
        records: list[StepRecord] = []
        findings: list[Finding] = []
        try:
            if any(isinstance(s, C.Migrate) for s in self.schedule.steps):
                self.recorder = chk.Recorder(env.truth, env.namespace, ("cnclaims",)).start()
            for pod in C.PODS:
                env.kubelet.create_pod(pod, labels=pod_labels(m.POD_IDLE))
            if self._start() != "ok":
                raise RuntimeError("the operator did not start on a healthy world")
            self._settle()
            for i, step in enumerate(self.schedule.steps, 1):
                records.append(self._step(i, step))
                self._safety(i, step)
                if self.violations:  # the verdict is decided: the rest would only cost time
                    journal.emit(
                        "explore", "stopped_early", after=i, check=self.violations[0].check
                    )
                    break
            self.heal()
            if not self.violations:
                findings = self._end()
            self._routine_effects()
        except Exception as exc:  # the harness broke, not an invariant: ERROR, never a pass
            journal.emit("explore", "error", error=_answer(exc))
            return Result(
                Outcome.ERROR,
                _answer(exc),
                self.violations,
                records,
                seconds=time.monotonic() - t0,
                namespace=env.namespace,
            )
        finally:
            self._close()
        findings = [*self.violations, *findings]
        outcome, text = judge(findings)
        fired = faults.fired(
            env.run_dir,
            since,
            failpoints=C.failpoints_of(self.schedule.steps),
            effects=C.effects_of(self.schedule.steps),
        )
        journal.emit("explore", "judged", outcome=str(outcome), symptom=text[:200], fired=fired)
        return Result(outcome, text, findings, records, fired, time.monotonic() - t0, env.namespace)

    def _close(self) -> None:
        for point in self.intakes:
            with contextlib.suppress(Exception):
                failpoints.disable(point)
        # close every operator connection first: a naive watch blocked on a silent socket
        # (watch_no_read_timeout) only returns when its connection goes
        paths = self.env.paths
        proxies = (paths.api_proxy, paths.watch_proxy, *paths.spares)
        for proxy in {id(p): p for p in proxies}.values():
            with contextlib.suppress(Exception):
                proxy.disable()
        if self.op is not None:
            with contextlib.suppress(Exception):
                self.op.stop(timeout=1.0)
        if self.recorder is not None:
            # its reads wake on the namespace purge's events; nobody needs to wait for that
            threading.Thread(target=self.recorder.stop, name="recorder-stop", daemon=True).start()

    # -- the operator --------------------------------------------------------------------------
    def _start(self) -> str:
        """Start a fresh operator on the schedule's store ("ok" or why not)."""
        env = self.env
        op = ClaimOperator(
            api=env.paths.api,
            watch=env.paths.watch,
            namespace=env.namespace,
            bugs=self.schedule.bugs,
            timing=env.timing,
            store=self.store,
            seed=env.seed,
        )
        try:
            op.start(timeout=START_S)
        except TooSlow as exc:  # start() stopped it already
            self.down = True
            journal.emit("explore", "operator_start_failed", error=str(exc)[:200])
            return f"operator start failed: {str(exc)[:120]}"
        self.op, self.down = op, False
        self.op_started = time.monotonic()
        return "ok"

    def _restart(self) -> str:
        if self.op is not None:
            self.op.stop(timeout=1.0)
            self.op = None
        return self._start()

    def _quiet(self) -> tuple[bool, dict[str, dict[str, str]]]:
        """(nothing queued or running and every cache = the truth, the truth's versions)."""
        versions = chk.World.read(self.env.truth, self.env.namespace, timeout=READ).versions()
        op = self.op
        if op is None:
            return not self.down, versions
        busy = any(q["queued"] or q["processing"] for q in op.pending().values())
        return not busy and op.cache_versions() == versions, versions

    def _settle(self) -> bool:
        """Until quiescent for QUIET_S (bounded by STEP_BOUND_S: False when still busy)."""
        state: dict[str, Any] = {"since": None, "versions": None}

        def probe() -> bool:
            try:
                ok, versions = self._quiet()
            except Unobservable:
                ok, versions = False, None
            now = time.monotonic()
            if not ok or versions != state["versions"]:
                state.update(since=now if ok else None, versions=versions)
                return False
            return state["since"] is not None and now - state["since"] >= QUIET_S

        try:
            wait_for(probe, timeout=STEP_BOUND_S, what="operator quiescent", interval=0.05)
            return True
        except TooSlow:
            return False

    # -- steps ---------------------------------------------------------------------------------
    def _world(self) -> chk.World:
        return chk.World.read(self.env.truth, self.env.namespace, timeout=READ)

    def _claim(self, w: chk.World, ref: str) -> str | None:
        """The claim a reference names now (a set member by its index among live members)."""
        found = C.MEMBER.match(ref)
        if not found:
            return ref
        members = sorted(
            n
            for n, c in w.objects["cnclaims"].items()
            if m.labels(c).get(m.CLAIMSET) == found["set"] and not m.deleting(c)
        )
        i = int(found["index"])
        return members[i] if i < len(members) else None

    def _pod(self, w: chk.World, ref: str) -> str | None:
        """The pod a reference names now: a pool pod, an idle one, or a claim's."""
        if ref in C.PODS:
            return ref
        if ref == C.IDLE:
            idle = inv.idle_pods(w)
            return idle[0] if idle else None
        claim = self._claim(w, ref)
        c = w.claim(claim) if claim else None
        return (m.spec(c).get("podName") or None) if c else None

    def _step(self, i: int, step: S.Step) -> StepRecord:
        t0 = time.monotonic()
        journal.emit("explore", "step", index=i, op=step.op, step=step.describe())
        if self.down and not isinstance(step, (C.Heal, C.Toxic, C.Intake, C.OperatorRestart)):
            self._start()
        try:
            answer = self._do(step)
            trigger = C.TRIGGERS.get(type(step))
            done = answer.split(":")[0] not in NO_EFFECT
            # a restart and a compaction journal their own evidence (seconds, revision)
            if trigger and done and not isinstance(step, (C.ApiserverRestart, C.Compact)):
                faults.observed(trigger, step=step.describe(), answer=answer)
        except (ApiException, OSError) as exc:
            answer = _answer(exc)
        except Unobservable as exc:
            answer = f"truth unreadable: {exc}"[:160]
        settled = self._settle()
        self._toxic_effects()
        rec = StepRecord(i, step.op, step.describe(), answer, time.monotonic() - t0, settled)
        journal.emit("explore", "step_done", index=i, answer=answer, settled=settled)
        return rec

    def _do(self, step: S.Step) -> str:
        env, truth, ns = self.env, self.env.truth, self.env.namespace
        if isinstance(step, C.CreateClaim):
            create_claim(truth, ns, step.claim)
            return "created"
        if isinstance(step, C.ScaleSet):
            if truth.get(m.CNCLAIMSETS, ns, step.set) is None:
                create_claimset(truth, ns, step.set, replicas=step.replicas)
                return "created"
            truth.patch(m.CNCLAIMSETS, ns, step.set, {"spec": {"replicas": step.replicas}})
            return "scaled"
        if isinstance(step, C.Toxic):
            return self.add_toxic(step)
        if isinstance(step, C.Intake):
            failpoints.enable(step.point, step.term)
            self.intakes.add(step.point)
            return f"armed {step.point}={step.term}"
        if isinstance(step, C.ApiserverRestart):
            took = env.cluster.restart_apiserver(graceful=True)
            faults.observed(C.RESTART_APISERVER, seconds=round(took, 3))
            return f"restarted in {took:.1f}s"
        if isinstance(step, C.Compact):
            try:
                rev = env.cluster.compact()
            except ProviderFailed as exc:
                # nothing written since the last compaction: etcd refuses the same revision
                # ("required revision has been compacted") — a no-op, not a broken world
                if "has been compacted" not in str(exc):
                    raise
                return "no such revision: already compacted"
            faults.observed(C.COMPACTION, revision=rev)
            return f"compacted at {rev}"
        if isinstance(step, C.OperatorRestart):
            return self._restart()
        if isinstance(step, C.Heal):
            self.heal()
            return "healed"
        w = self._world()
        if isinstance(step, C.DeleteClaim):
            name = self._claim(w, step.claim)
            if name is None or w.claim(name) is None:
                return "no such claim"
            self.deleted.add(name)
            truth.delete(m.CNCLAIMS, ns, name)
            return f"deleting {name}"
        if isinstance(step, C.Migrate):
            return self.migrate(w, step)
        pod = self._pod(w, step.pod)  # type: ignore[attr-defined]
        if pod is None or w.pod(pod) is None:
            return "no such pod"
        if isinstance(step, C.DeletePod):
            env.kubelet.vanish(pod)
            return f"deleted {pod}"
        if isinstance(step, C.RecreatePod):
            env.kubelet.vanish(pod)
            wait_for(
                lambda: truth.get(m.PODS, ns, pod) is None,
                timeout=STEP_BOUND_S,
                what=f"{pod} gone",
                interval=0.05,
            )
            env.kubelet.create_pod(pod, labels=pod_labels(m.POD_IDLE))
            return f"recreated {pod}"
        if isinstance(step, C.PodPhase):
            if step.phase == "Running":
                env.kubelet.run(pod)
            else:
                env.kubelet.set_phase(pod, step.phase)
            return f"{pod} {step.phase}"
        raise TypeError(f"no action for step {step.op}")

    def migrate(self, w: chk.World, step: C.Migrate) -> str:
        """Point the claim at the target pod and record its old one as ``sourcePod``."""
        name = self._claim(w, step.claim)
        c = w.claim(name) if name else None
        if c is None or m.deleting(c):
            return "no such claim"
        old = m.spec(c).get("podName") or ""
        target = self._pod(w, step.to)
        if not old or target is None or target == old:
            return "nothing to migrate" if not old else "no target pod"
        node = m.spec(c).get("nodeName") or ""
        patch = {
            "spec": {
                "podName": target,
                "sourcePod": {"podName": old, "nodeName": node},
            }
        }
        self.env.truth.patch(m.CNCLAIMS, self.env.namespace, name, patch)  # type: ignore[arg-type]
        self.migrated[name] = target  # type: ignore[index]
        return f"{name}: {old} -> {target}"

    # -- faults ----------------------------------------------------------------------------
    def _stream_ends(self) -> int:
        op = self.op
        if op is None:
            return 0
        return sum(
            s.stats.breaks + s.stats.clean_ends + s.stats.read_timeouts + s.stats.gone
            for s in op.informers.values()
        )

    def _baseline(self) -> dict[str, int]:
        op = self.op
        errors = 0
        if op is not None:
            with op._stats_lock:
                errors = sum(v for k, v in op.ctx.stats.items() if k.startswith("error/"))
        return {
            "op": id(op),
            "ends": self._stream_ends(),
            "errors": errors,
            "activity": op.activity() if op is not None else 0,
        }

    def add_toxic(self, step: C.Toxic) -> str:
        paths = self.env.paths
        proxy = paths.api_proxy if step.leg == "api" else self.watch_proxy
        base = self._baseline()
        name = f"t{len(self.toxics) + len(self.silenced)}-{step.kind}"
        if step.kind == "down":
            proxy.disable()
            self.disabled.append((proxy, step, base))
            return f"{proxy.name} down"
        if step.kind == "silent":
            # the old connections go quiet without a close; new ones fail over (§5.1)
            proxy.add_toxic("timeout", name=name, timeout=0)
            self.silenced.append((proxy, name))
            self.watch_proxy = paths.failover_watch()
            self.toxics.append((proxy, "", step, base))  # effect tracking only
            return f"{proxy.name} silent; new watches via {self.watch_proxy.name}"
        attrs: dict[str, Any] = {"timeout": 0} if step.kind == "reset_peer" else {}
        if step.kind == "latency":
            attrs = {"latency": step.arg}
        proxy.add_toxic(step.kind, name=name, **attrs)
        self.toxics.append((proxy, name, step, base))
        return f"added to {proxy.name}"

    def _toxic_effects(self) -> None:
        """A toxic has no trigger record: journal its effect once it is seen (a watch
        stream ended, a request failed, traffic passed under latency)."""
        now = self._baseline()
        active = [(s, b) for _, _, s, b in self.toxics] + [(s, b) for _, s, b in self.disabled]
        for step, base in active:
            effect = C.toxic_effect(step)
            if effect in self.seen_effects:
                continue
            same_op = base["op"] == now["op"]
            if step.kind in ("reset_peer", "down", "silent") and step.leg == "watch":
                seen = not same_op or now["ends"] > base["ends"]
                if step.kind == "silent" and not seen:
                    seen = self._silence_visible()
            elif step.kind == "reset_peer":
                seen = not same_op or now["errors"] > base["errors"]
            else:  # latency: traffic passed through the slowed leg
                seen = not same_op or now["activity"] > base["activity"]
            if seen:
                self.seen_effects.add(effect)
                faults.observed(effect, **{k: v for k, v in now.items() if k != "op"})

    def _routine_effects(self) -> None:
        """Journal that an idle watch stream ended on its read timeout (the fixed loop
        re-opens it; a naive one may stop there): the fault of a schedule without one."""
        op = self.op
        n = sum(i.stats.read_timeouts for i in op.informers.values()) if op else 0
        if n:
            faults.observed(C.ROUTINE_READ_TIMEOUT, read_timeouts=n)

    def _silence_visible(self) -> bool:
        """A naive loop never times out on a silent stream: its silence shows as a cache
        that lags the truth."""
        try:
            ok, _ = self._quiet()
        except Unobservable:
            return False
        return not ok

    def heal(self) -> None:
        """Remove every fault: toxics, downed proxies, intake failpoints; restart a stopped
        operator. A silenced (half-open) connection stays dead: it is gone, not faulted."""
        self._toxic_effects()
        for proxy, name, _, _ in self.toxics:
            if name:
                with contextlib.suppress(Exception):
                    proxy.remove_toxic(name)
        for proxy, _, _ in self.disabled:
            with contextlib.suppress(Exception):
                proxy.enable()
        self.toxics.clear()
        self.disabled.clear()
        for point in sorted(self.intakes):
            with contextlib.suppress(Exception):
                failpoints.disable(point)
        self.intakes.clear()
        if self.down:
            try:
                wait_for(
                    lambda: self._start() == "ok",
                    timeout=3 * START_S,
                    what="the operator starts again after the heal",
                    interval=0.5,
                )
            except TooSlow as exc:
                raise RuntimeError(str(exc)) from None
        journal.emit("explore", "healed")

    # -- invariants --------------------------------------------------------------------------
    def _safety(self, i: int, step: S.Step) -> None:
        try:
            w = self._world()
        except Unobservable:
            return  # a step's truth unread: the end's convergence reads it again
        where = f"T{i} ({step.describe()})"
        for text in inv.double_bound(w, self.migrated):
            self._violate(inv.ONE_CLAIM_PER_POD, f"{where}: {text}")
        if self.recorder is not None:
            for text in inv.migrating_deleted(self.recorder.seen(lambda e: True), self.deleted):
                self._violate(inv.MIGRATING_KEPT, f"{where}: {text}")

    def _violate(self, check: str, text: str) -> None:
        if any(v.check == check for v in self.violations):
            return  # the first occurrence says it; later ones repeat it
        journal.emit("explore", "violation", check=check, symptom=text)
        self.violations.append(Finding(check, False, text))

    def _loops(self) -> dict[str, str]:
        op = self.op
        return {k: inf.stats.state for k, inf in op.informers.items()} if op else {}

    def _end(self) -> list[Finding]:
        """After the heal: poll until every convergence finding holds for HOLD_S (and the
        operator has lived through one watch read-timeout cycle), or a failing state is
        final (SETTLED_S), bounded by CONVERGE_S; a truth unread at the end is
        INCONCLUSIVE."""
        state: dict[str, Any] = {"ok_since": None, "findings": None, "error": ""}
        state.update(sig=None, idle_since=None)

        def probe() -> bool:
            try:
                w = self._world()
            except Unobservable as exc:
                state.update(ok_since=None, findings=None, error=str(exc), idle_since=None)
                return False
            op = self.op
            idle = op is not None and op.idle()
            caches = op.cache_versions() if op is not None else None
            found = inv.convergence(w, caches, self._loops())
            state["findings"] = found
            now = time.monotonic()
            if all(f.ok for f in found):
                state["ok_since"] = state["ok_since"] or now
                # a watch loop's liveness shows only over a read-timeout cycle: an idle
                # stream's routine read timeout is where a naive loop stops
                cycle = self.op_started + self.env.timing.watch_read_timeout + CYCLE_MARGIN_S
                return now - state["ok_since"] >= HOLD_S and now >= cycle
            state["ok_since"] = None
            sig = [(f.check, f.ok) for f in found]
            if not idle or sig != state["sig"] or caches != w.versions():
                state.update(sig=sig, idle_since=None)
                return False
            state["idle_since"] = state["idle_since"] or now
            return now - state["idle_since"] >= SETTLED_S

        with contextlib.suppress(TooSlow):
            wait_for(probe, timeout=CONVERGE_S, what="claims world converged", interval=0.1)
        out: list[Finding] = list(state["findings"] or [])
        if not out:
            out = [
                Finding(
                    "truth",
                    False,
                    f"API server unreadable after the heal: {state['error']}",
                    observed=False,
                )
            ]
        if self.recorder is not None and self.migrated:
            blind = self.recorder.blind()
            if blind:  # "no migrating claim was deleted" is only known when it was watched
                out.append(Finding(inv.MIGRATING_KEPT, False, blind, observed=False))
        return out
