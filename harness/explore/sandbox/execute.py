"""Run one schedule on the real servers and judge it (issue #12 §2).

The world is a :class:`harness.pytest_plugin.sandbox.SandboxEnv` — the very object the
sandbox suites get from their ``sandbox_env`` fixture (a namespace of its own, a toxiproxy
proxy in front of containerd's gRPC socket, reconcilers behind it); the explorer builds one
per schedule the same way (:mod:`harness.explore.world`), the regression suite takes the
fixture's.

Logical time: a step is one call; it ends when the call returned and the reconciler has
nothing in flight (bounded by :data:`STEP_BOUND_S` — a step still busy then is journaled
as such and the schedule goes on, faults still armed). Faults fire on events (the failpoint
term counts evaluations), never on sleeps.

Safety, checked after every step (the truth read from the shims, never from the view):

- ``unknown`` written for a sandbox whose shim reports it RUNNING or PAUSED;
- a sandbox removed from the view while its shim still reports it RUNNING or PAUSED;
- two task Deletes in flight at once in one shim (one owner of the delete, seed b);
- a reconciler call still in flight after the step bound (every call has a deadline).

A safety violation ends the schedule there (its verdict is decided; the later steps and the
end checks would only cost time — a hung call costs the step bound at every step); the
namespace is still healed and reaped.

After the last step: heal, wait for quiescence, then convergence (view = truth, through the
hold window, ``harness.checks.sandbox.convergence``) for the sandboxes the view holds, no
leak for the ones it removed (``checks.sandbox.leak``), and the suites' teardown leak check
(``teardown_leak_check``: every shim, task, bundle, FIFO beyond the live sandboxes), which
also reaps the namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Coroutine
from typing import Any

from harness import journal
from harness.checks import faults, leaks
from harness.checks import sandbox as chk
from harness.errors import TooSlow
from harness.explore import schedule as S
from harness.explore.result import Result, StepRecord, judge
from harness.journal import merge
from harness.pytest_plugin.sandbox import SandboxEnv, failpoint_annotations, teardown_leak_check
from harness.reconciler.sandbox import ReconcilerHost
from harness.reconciler.sandbox.runtime import describe
from harness.shim import identity
from harness.verdict import Finding, Outcome
from harness.wait import wait_for

#: how long one step may take before the schedule moves on (the call keeps running)
STEP_BOUND_S = 8.0
#: alive-shim states under which a sandbox must be neither ``unknown`` nor removed
LIVE = ("RUNNING", "PAUSED")


class Executor:
    """Runs the steps of one schedule against one :class:`SandboxEnv`."""

    def __init__(self, env: SandboxEnv, schedule: S.Schedule) -> None:
        self.env = env
        self.schedule = schedule
        self.host: ReconcilerHost | None = None
        self.pending: dict[str, dict[str, str]] = {}  # faults the next create carries
        self.armed: dict[str, set[str]] = {}  # failpoint names set on a live shim
        self.toxics: list[str] = []
        self.toxic_steps: dict[str, S.Toxic] = {}
        self.created: list[str] = []
        self.violations: list[Finding] = []
        self._writes_seen = 0
        self._generation = 0
        self._inflight: list[Any] = []
        self._starts: list[float] = []  # monotonic start of each step
        self.down = False  # the reconciler was killed and could not start again yet
        self._reaped = False

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Result:
        env = self.env
        t0 = time.monotonic()
        since = t0
        journal.emit("explore", "schedule", namespace=env.namespace, steps=len(self.schedule))
        records: list[StepRecord] = []
        findings: list[Finding] = []
        try:
            self.host = env.reconciler(self.schedule.bugs)
            for i, step in enumerate(self.schedule.steps, 1):
                records.append(self._step(i, step))
                self._safety(i, step)
                if self.violations:  # the verdict is decided: the rest would only cost time
                    journal.emit(
                        "explore", "stopped_early", after=i, check=self.violations[0].check
                    )
                    break
            self.heal()
            if self.down:  # grpc backs off a subchannel that failed: retry, bounded
                try:
                    wait_for(
                        lambda: self._ensure_up() == "ok",
                        timeout=STEP_BOUND_S,
                        what="the reconciler starts again after the heal",
                        interval=0.5,
                    )
                except TooSlow as exc:
                    raise RuntimeError(str(exc)) from None
            self._one_delete_owner(since)
            if not self.violations:
                findings = self._end(since)  # else _close reaps the namespace
        except Exception as exc:  # the harness broke, not an invariant: ERROR, never a pass
            journal.emit("explore", "error", error=describe(exc))
            return Result(
                Outcome.ERROR,
                describe(exc),
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
            env.run_dir, since, failpoints=self.schedule.faults(), effects=self.schedule.effects()
        )
        journal.emit("explore", "judged", outcome=str(outcome), symptom=text[:200], fired=fired)
        return Result(outcome, text, findings, records, fired, time.monotonic() - t0, env.namespace)

    def _close(self) -> None:
        for f in self._inflight:
            f.cancel()
        if self.host is not None:
            with contextlib.suppress(Exception):
                self.host.close()
        if not self._reaped:  # a run that broke still leaves its namespace clean
            with contextlib.suppress(Exception):
                teardown_leak_check(self.env, test=f"explore {self.env.namespace}", variant="-")

    # -- steps -----------------------------------------------------------------------------
    def _bounded(self, coro: Coroutine[Any, Any, Any]) -> str:
        """Run a reconciler call; its answer as text ("ok", the error, or "in flight")."""
        assert self.host is not None

        async def catch() -> str:
            try:
                await coro
            except Exception as exc:
                return str(getattr(exc, "message", "") or describe(exc))[:160]
            return "ok"

        t0 = time.monotonic()
        fut = asyncio.run_coroutine_threadsafe(catch(), self.host.loop)
        try:
            answer = str(fut.result(STEP_BOUND_S))
        except TimeoutError:
            self._inflight.append(fut)
            answer = f"in flight after {STEP_BOUND_S:.0f}s"
        self._toxic_effects(answer, time.monotonic() - t0)
        return answer

    def _toxic_effects(self, answer: str, seconds: float) -> None:
        """A toxic has no trigger record: journal its effect when a call under it failed
        (or, for latency, took at least the latency) — what ``faults.fired`` counts."""
        for name, step in self.toxic_steps.items():
            slowed = step.kind == "latency" and seconds >= step.arg / 1000
            if answer != "ok" or slowed:
                faults.observed(S.toxic_effect(step), toxic=name, answer=answer[:80])

    def _ensure_up(self) -> str:
        """Start the reconciler again after a kill -9 (its boot needs containerd: under a
        toxic it may fail; it is tried again before every later step and after the heal)."""
        assert self.host is not None
        if not self.down:
            return "ok"
        try:
            self.host.restart()
        except Exception as exc:
            journal.emit("explore", "restart_failed", error=describe(exc))
            return f"restart failed: {describe(exc)}"[:160]
        self.down = False
        return "ok"

    def _step(self, i: int, step: S.Step) -> StepRecord:
        assert self.host is not None
        t0 = time.monotonic()
        if self.down and not isinstance(step, (S.Heal, S.Toxic, S.ShimFault, S.Restart)):
            self._ensure_up()
        host, r = self.host, self.host.r
        self._starts.append(t0)
        journal.emit("explore", "step", index=i, op=step.op, step=step.describe())
        answer = "ok"
        sid = step.target
        if isinstance(step, S.Create):
            ann = failpoint_annotations(**self.pending.pop(sid, {}))
            answer = self._bounded(r.create(sid, ann))
            if answer == "ok":
                self.created.append(sid)
                self.armed[sid] = {fp_name(k) for k in ann}
        elif isinstance(step, S.Pause):
            answer = self._bounded(r.pause(sid, step.timeout))
        elif isinstance(step, S.Resume):
            answer = self._bounded(r.resume(sid, step.timeout))
        elif isinstance(step, S.Stop):
            answer = self._bounded(r.stop_sandbox(sid, STEP_BOUND_S - 1))
        elif isinstance(step, S.Delete):
            answer = self._bounded(r.remove_sandbox(sid))
        elif isinstance(step, S.KillTask):
            answer = self.kill_task(sid)
        elif isinstance(step, S.Restart):
            host.crash()
            faults.observed(S.RESTART_EFFECT, generation=host.generation)
            self.down = True
            answer = self._ensure_up()
        elif isinstance(step, S.ShimFault):
            answer = self.arm(step)
        elif isinstance(step, S.Toxic):
            answer = self.add_toxic(step)
        elif isinstance(step, S.Heal):
            self.heal()
        if answer.startswith("in flight"):
            # every call has a deadline of its own (or the caller's): one that outlives the
            # step bound hangs (seed a's Pause on the caller's context, no own deadline)
            self._violate(
                "liveness: calls return",
                f"T{i} ({step.describe()}): the call was still in flight after {STEP_BOUND_S:.0f}s",
            )
        settled = self._settle()
        rec = StepRecord(i, step.op, step.describe(), answer, time.monotonic() - t0, settled)
        journal.emit("explore", "step_done", index=i, answer=answer, settled=settled)
        return rec

    def _settle(self) -> bool:
        """Until nothing is in flight or queued (bounded: False when still busy)."""
        assert self.host is not None
        try:
            chk.quiescent(self.host, since=time.monotonic(), horizon=0.0, timeout=STEP_BOUND_S)
            return True
        except Exception:
            return False

    def kill_task(self, sid: str) -> str:
        """SIGKILL the sandbox's task processes (found by the stub's task marker, so a
        recycled pid is never hit)."""
        env = self.env
        procs = [
            p
            for p in identity.task_procs(env.run.id)
            if p.namespace == env.namespace and p.container_id == sid
        ]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        if not procs:
            return "no task process"
        # the step is over once the reconciler has handled the exit (the watcher's Wait is
        # not "in flight": without this, the schedule would move on before the Delete)
        assert self.host is not None
        host = self.host

        def handled() -> bool:
            view = host.snapshot()["view"].get(sid)
            return view is None or view["state"] in ("EXITED", "UNKNOWN")

        try:
            wait_for(handled, timeout=STEP_BOUND_S, what=f"the exit of {sid} handled")
        except TooSlow:
            return f"killed {len(procs)} process(es); exit not handled in {STEP_BOUND_S:.0f}s"
        return f"killed {len(procs)} process(es); exit handled"

    def _shim_live(self, sid: str) -> dict[str, Any] | None:
        entry = leaks.registry_entry(self.env.run_dir, self.env.namespace, sid)
        if entry and leaks.shim_alive(int(entry.get("pid") or 0)):
            return entry
        return None

    def arm(self, step: S.ShimFault) -> str:
        """On the live shim (its control socket), else carried by the next create."""
        import failpoints

        entry = self._shim_live(step.sandbox)
        if entry is None:
            key, term = step.annotation
            self.pending.setdefault(step.sandbox, {})[key] = term
            return "pending: armed by the next create"
        try:
            failpoints.ControlClient(f"unix:{entry.get('control', '')}").set(step.point, step.term)
        except Exception as exc:
            return f"not armed: {type(exc).__name__}: {exc}"[:160]
        self.armed.setdefault(step.sandbox, set()).add(step.point)
        return "armed on the live shim"

    def add_toxic(self, step: S.Toxic) -> str:
        name = f"t{len(self.toxics)}-{step.kind}"
        attrs: dict[str, Any] = {"timeout": 0} if step.kind in ("reset_peer", "timeout") else {}
        if step.kind == "latency":
            attrs = {"latency": step.arg}
        self.env.proxy.add_toxic(step.kind, name=name, **attrs)
        self.toxics.append(name)
        self.toxic_steps[name] = step
        return "added"

    def heal(self) -> None:
        """Remove every fault: toxics, failpoints on live shims (hangs released), pending."""
        import failpoints

        for name in self.toxics:
            with contextlib.suppress(Exception):
                self.env.proxy.remove_toxic(name)
        self.toxics.clear()
        self.toxic_steps.clear()
        self.pending.clear()
        for sid, points in self.armed.items():
            entry = self._shim_live(sid)
            if entry is None:
                continue
            client = failpoints.ControlClient(f"unix:{entry.get('control', '')}")
            for p in sorted(points):
                with contextlib.suppress(Exception):
                    client.clear(p)
                    client.release(p)
        self.armed.clear()
        journal.emit("explore", "healed")

    # -- invariants --------------------------------------------------------------------------
    def _truth(self, sid: str) -> str | None:
        try:
            return chk.shim_status(self.env.run_dir, self.env.namespace, sid)
        except chk.PROBE_ERRORS:
            return None

    def _safety(self, i: int, step: S.Step) -> None:
        assert self.host is not None
        snap = self.host.snapshot()
        if snap["generation"] != self._generation:  # a restarted reconciler logs anew
            self._generation, self._writes_seen = snap["generation"], 0
        writes = snap["writes"][self._writes_seen :]
        self._writes_seen = len(snap["writes"])
        for w in writes:
            if w.fields.get("unknown") and self._truth(w.sandbox) in LIVE:
                self._violate(
                    "safety: unknown",
                    f"T{i} ({step.describe()}): unknown=true written by {w.origin} for "
                    f"{w.sandbox} while its shim reports it {self._truth(w.sandbox)}",
                )
        for sid in set(self.created) - set(snap["view"]):
            truth = self._truth(sid)
            if truth in LIVE:
                self._violate(
                    "safety: removed while running",
                    f"T{i} ({step.describe()}): {sid} removed from the view while its shim "
                    f"reports it {truth}",
                )

    def _one_delete_owner(self, since: float) -> None:
        """Two task Deletes in flight at once in one shim, named by the step it began in."""
        overlaps = merge.find(
            self.env.run_dir, after=since, component="shim", event="delete_overlap"
        )
        mine = [r for r in overlaps if r.fields.get("id") in self.created]
        if not mine:
            return
        i = max((k for k, t in enumerate(self._starts, 1) if t <= mine[0].mono), default=1)
        step = self.schedule.steps[i - 1]
        self._violate(
            "safety: one delete owner",
            f"T{i} ({step.describe()}): two task Deletes in flight at once for "
            f"{mine[0].fields.get('id')} in its shim",
        )

    def _violate(self, check: str, text: str) -> None:
        if any(v.check == check for v in self.violations):
            return  # the first occurrence says it; later ones repeat it
        journal.emit("explore", "violation", check=check, symptom=text)
        self.violations.append(chk.SandboxFinding(check, ok=False, symptom=text))

    def _end(self, since: float) -> list[Finding]:
        """After the heal: convergence for what the view holds, no leak for the rest."""
        assert self.host is not None
        env, host = self.env, self.host
        t = env.timing
        out: list[Finding] = []
        view = host.snapshot()["view"]
        held = [s for s in S.SANDBOXES if s in view]
        if held:
            out.append(
                chk.note(
                    chk.convergence(
                        host,
                        env.run_dir,
                        held,
                        since=time.monotonic(),
                        horizon=t.quiescence_horizon,
                        timeout=t.quiescence_horizon + 15,
                    )
                )
            )
        gone = [s for s in self.created if s not in view]
        if gone:
            out.append(env.leak(sorted(set(gone)), timeout=2.0))
        host.close()
        self._reaped = True
        problems = teardown_leak_check(
            env, test=f"explore {env.namespace}", variant="fixed", strict=True
        )
        if problems:
            unobserved = problems[0].startswith("leak check at teardown could not observe")
            out.append(
                chk.SandboxFinding(
                    "teardown leaks",
                    ok=False,
                    observed=not unobserved,
                    symptom=_first_leak(problems[0]),
                    details=problems,
                )
            )
        else:
            out.append(chk.SandboxFinding("teardown leaks", ok=True, symptom="nothing left"))
        return out


def _first_leak(problem: str) -> str:
    """``leaked at teardown: <first finding>`` without the run-dir socket path."""
    lines = problem.splitlines()
    if len(lines) < 2:
        return problem
    return "leaked at teardown: " + lines[1].strip().split(" [", 1)[0]


def fp_name(annotation_key: str) -> str:
    """``io.containerd.runtime.v2.shim.failpoint.Delete.between`` -> ``shim.Delete.between``."""
    return "shim." + annotation_key.rsplit("failpoint.", 1)[-1]
