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
- a reconciler call still in flight after the step bound (every call has a deadline) —
  a call begun by ``pause_async``/``resume_async`` included, counted from its start.

A safety violation ends the schedule there (its verdict is decided; the later steps and the
end checks would only cost time — a hung call costs the step bound at every step); the
namespace is still healed and reaped.

After the last step: heal, wait for quiescence, then convergence (view = truth, through the
hold window, ``harness.checks.sandbox.convergence``) for the sandboxes the view holds, no
leak for the ones it removed (``checks.sandbox.leak``), and the suites' teardown leak check
(``teardown_leak_check``: every shim, task, bundle, FIFO beyond the live sandboxes), which
also reaps the namespace. With the convergence: a sandbox the reconciler saw paused and
now holds RUNNING must have had its snapshot bindings invalidated (seed a: a resume, by
whichever path it converged — RPC, status query or ``/tasks/resumed`` — drops them).

Legs: a schedule with a toxic on ``containerd-shim`` creates every sandbox with the stub's
relay annotation (containerd's ttrpc to that shim through a proxy of its own, which the toxic
is put on); one with a toxic on ``shim-containerd`` sends every shim's event Forwards
through a proxy of this namespace in front of containerd's ttrpc socket. A schedule without
them costs nothing of either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from harness.explore.sandbox.world import ttrpc_relay
from harness.journal import merge
from harness.pytest_plugin.sandbox import SandboxEnv, failpoint_annotations, teardown_leak_check
from harness.reconciler.sandbox import ReconcilerHost
from harness.reconciler.sandbox.record import SENTINEL_BINDING
from harness.reconciler.sandbox.runtime import describe
from harness.shim import identity
from harness.shim.relay import ANNOTATION_EVENTS_ADDRESS, ANNOTATION_TOXIPROXY
from harness.verdict import Finding, Outcome
from harness.wait import wait_for

#: how long one step may take before the schedule moves on (the call keeps running)
STEP_BOUND_S = 8.0
#: alive-shim states under which a sandbox must be neither ``unknown`` nor removed
LIVE = ("RUNNING", "PAUSED")
#: shim methods whose success publishes an event (/tasks/create, start, paused, resumed, exit)
EVENTFUL = ("Create", "Start", "Pause", "Resume", "Kill")


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
        self._toxic_t0: dict[str, float] = {}
        self._shim_toxic_at: dict[str, list[tuple[str, float]]] = {}  # toxic → (sid, since)
        self._starts: list[float] = []  # monotonic start of each step
        self.down = False  # the reconciler was killed and could not start again yet
        self._reaped = False
        legs = {s.leg for s in schedule.steps if isinstance(s, S.Toxic)}
        self.relay_shims = "containerd-shim" in legs  # every create carries the relay
        self.events_leg = "shim-containerd" in legs
        self.events_proxy: Any = None  # this namespace's proxy on the events leg
        self.shim_toxics: dict[str, list[tuple[Any, str]]] = {}  # toxic → (proxy, name)
        #: calls begun without waiting: (index, step, future, monotonic and wall start)
        self._async: list[tuple[int, S.PauseAsync | S.ResumeAsync, Any, float, float]] = []
        self._paused_seen: set[str] = set()  # sandboxes a write showed paused (bindings)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Result:
        env = self.env
        t0 = time.monotonic()
        since = t0
        journal.emit("explore", "schedule", namespace=env.namespace, steps=len(self.schedule))
        records: list[StepRecord] = []
        findings: list[Finding] = []
        try:
            if self.events_leg:
                self.events_proxy = env.proxy.client.create(
                    f"{env.namespace}-events", ttrpc_relay(env.containerd)
                )
            self.host = env.reconciler(self.schedule.bugs)
            for i, step in enumerate(self.schedule.steps, 1):
                records.append(self._step(i, step))
                self._safety(i, step)
                self._async_liveness(i)
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
            self._await_async()
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
        for f in [*self._inflight, *(a[2] for a in self._async)]:
            f.cancel()
        if self.host is not None:
            with contextlib.suppress(Exception):
                self.host.close()
        if not self._reaped:  # a run that broke still leaves its namespace clean
            with contextlib.suppress(Exception):
                teardown_leak_check(self.env, test=f"explore {self.env.namespace}", variant="-")
        if self.events_proxy is not None:
            with contextlib.suppress(Exception):
                self.events_proxy.destroy()

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
        for name, step in list(self.toxic_steps.items()):  # a begun call's callback: a copy
            if step.leg != "reconciler-containerd":
                continue  # no reconciler call crosses it alone: see _events/_shim_leg_effect
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
            self._toxic_effects(f"restart failed: {describe(exc)}", 0.0)
            return f"restart failed: {describe(exc)}"[:160]
        self.down = False
        return "ok"

    def _step(self, i: int, step: S.Step) -> StepRecord:
        assert self.host is not None
        t0 = time.monotonic()
        world_steps = (S.Heal, S.Toxic, S.ShimFault, S.Restart, S.ContainerdRestart)
        if self.down and not isinstance(step, world_steps):
            self._ensure_up()
        host, r = self.host, self.host.r
        self._starts.append(t0)
        journal.emit("explore", "step", index=i, op=step.op, step=step.describe())
        answer = "ok"
        sid = step.target
        if isinstance(step, S.Create):
            self._previous_shim_gone(sid)
            ann = failpoint_annotations(**self.pending.pop(sid, {}))
            answer = self._bounded(r.create(sid, {**ann, **self._leg_annotations()}))
            if answer == "ok":
                self.created.append(sid)
                self._paused_seen.discard(sid)  # a new incarnation: fresh bindings
                self.armed[sid] = {fp_name(k) for k in ann}
                self._shim_toxics_on(sid)
                journal.emit(
                    "explore", "incarnation", id=sid, n=host.incarnation(sid), pid=host.pid(sid)
                )
        elif isinstance(step, (S.PauseAsync, S.ResumeAsync)):
            answer = self.begin(i, step)
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
            begun = [a for a in self._async if not a[2].done()]
            host.crash()
            faults.observed(S.RESTART_EFFECT, generation=host.generation)
            self.down = True
            gone = self._while_down(begun)
            answer = self._ensure_up()
            answer = f"{answer}; {gone}" if gone else answer
        elif isinstance(step, S.ContainerdRestart):
            answer = self.restart_containerd(step)
        elif isinstance(step, S.LateExit):
            answer = self.late_exit(sid)
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
        # a call begun without waiting is meant to overlap the next steps: while one is under
        # way, a step ends with its own call (waiting for quiescence would wait for it too)
        overlapping = any(not a[2].done() for a in self._async)
        settled = False if overlapping else self._settle()
        rec = StepRecord(i, step.op, step.describe(), answer, time.monotonic() - t0, settled)
        journal.emit("explore", "step_done", index=i, answer=answer, settled=settled)
        return rec

    def _previous_shim_gone(self, sid: str) -> None:
        """Before ``sid`` is created again: its previous shim, removed from the view, has
        finished exiting (bounded). The step before it ended at the reconciler's
        quiescence, but the old daemon's exit is still in flight for a few ms, and the new
        shim serves on the same socket path (its key is the id's): the harness's own race,
        not the reconciler's, so the explorer waits it out."""
        assert self.host is not None
        entry = leaks.registry_entry(self.env.run_dir, self.env.namespace, sid)
        pid = int((entry or {}).get("pid") or 0)
        if not pid or sid in self.host.snapshot()["view"]:
            return
        with contextlib.suppress(TooSlow):
            wait_for(
                lambda: not leaks.shim_alive(pid),
                timeout=2.0,
                interval=0.02,
                what=f"the previous shim of {sid} exited",
            )

    # -- the vocabulary's world steps ---------------------------------------------------------
    def begin(self, i: int, step: S.PauseAsync | S.ResumeAsync) -> str:
        """Begin a Pause/Resume and return once its request reached the shim (or the call
        already answered): the next step then overlaps a call the shim is working on."""
        assert self.host is not None
        t0 = time.monotonic()
        start = self.host.start_pause if isinstance(step, S.PauseAsync) else self.host.start_resume
        fut = start(step.sandbox, step.timeout)

        def answered(f: Any) -> None:  # on the reconciler's loop: a toxic under it took effect
            if not f.cancelled():  # cancelled: the reconciler was killed, not a toxic
                self._toxic_effects(_answer(f), time.monotonic() - t0)

        fut.add_done_callback(answered)
        method = "Pause" if isinstance(step, S.PauseAsync) else "Resume"

        wall = time.time()
        self._async.append((i, step, fut, t0, wall))

        def reached() -> bool:
            run_dir, sid = self.env.run_dir, step.sandbox
            return fut.done() or _shim_journaled(run_dir, t0, wall, "request", method, sid)

        try:
            wait_for(
                reached, timeout=STEP_BOUND_S, what=f"the {method} reached the shim", interval=0.05
            )
        except TooSlow:
            return f"begun; no {method} request at the shim in {STEP_BOUND_S:.0f}s"
        if fut.done():
            return f"answered at once: {_answer(fut)}"
        return f"begun: the {method} is at the shim"

    def _async_liveness(self, i: int) -> None:
        """A begun call still in flight past the step bound (from its start) hangs."""
        now = time.monotonic()
        for j, step, fut, t0, _wall in self._async:
            if not fut.done() and now - t0 > STEP_BOUND_S:
                self._violate(
                    "liveness: calls return",
                    f"T{j} ({step.describe()}): the call was still in flight "
                    f"{now - t0:.0f}s after it began (at T{i})",
                )

    def _await_async(self) -> None:
        """After the last step: every begun call answers within the step bound of its start."""
        for j, _step, fut, t0, _wall in self._async:
            with contextlib.suppress(Exception):
                fut.result(max(0.0, t0 + STEP_BOUND_S - time.monotonic()))
            answer = _answer(fut) if fut.done() else "in flight"
            journal.emit("explore", "async_answer", index=j, answer=answer)
        self._async_liveness(len(self.schedule.steps))

    def _while_down(self, begun: list[tuple[int, Any, Any, float, float]]) -> str:
        """With the reconciler dead, let the shims finish the calls it had begun (each one's
        reply journaled, bounded): whatever they publish meanwhile is lost to it, as for a
        reconciler that stays down for as long as the call takes."""
        run_dir, done = self.env.run_dir, []
        for j, step, _fut, t0, wall in begun:
            method = "Pause" if isinstance(step, S.PauseAsync) else "Resume"
            replied = functools.partial(
                _shim_journaled, run_dir, t0, wall, "reply", method, step.sandbox
            )
            try:
                wait_for(replied, timeout=STEP_BOUND_S, interval=0.05, what=f"{method} reply")
                done.append(f"the shim finished T{j}'s {method} while it was down")
            except TooSlow:
                done.append(f"no {method} reply for T{j} in {STEP_BOUND_S:.0f}s")
        return "; ".join(done)

    def restart_containerd(self, step: S.ContainerdRestart) -> str:
        """Stop the world's containerd (SIGTERM or SIGKILL) and start it on the same root and
        state; the reconciler's gRPC channel reconnects through its proxy, its event stream is
        lost and re-subscribed (with a relist)."""
        c = self.env.containerd
        try:
            c.restart(kill=step.kill)
        except Exception as exc:
            return f"containerd did not start again: {describe(exc)}"[:160]
        pid = c.proc.pid if c.proc else 0
        faults.observed(S.CONTAINERD_EFFECTS[step.kill], pid=pid)
        answer = f"containerd up again (pid {pid})"
        if self.down:  # nothing to reconnect: the reconciler starts again before its next call
            return answer
        # the step ends once the reconciler is back (logical time: its gRPC channel answers
        # and its event stream is subscribed again), not after a sleep; a call made in the
        # channel's reconnect backoff would fail UNAVAILABLE for no reason of the schedule's
        try:
            wait_for(
                self._reconnected,
                timeout=STEP_BOUND_S,
                interval=0.1,
                what="the reconciler reconnected to the restarted containerd",
            )
        except TooSlow:
            return answer + f"; the reconciler had not reconnected in {STEP_BOUND_S:.0f}s"
        return answer + "; reconciler reconnected"

    def _reconnected(self) -> bool:
        """The reconciler's channel answers and its event stream is subscribed."""
        host = self.host
        assert host is not None and host.client is not None
        try:
            host.call(host.client.version(timeout=1.0), timeout=3.0)
        except Exception:
            return False
        return host.r.subscribed.is_set()

    def late_exit(self, sid: str) -> str:
        """The live shim of ``sid`` publishes ``/tasks/exit`` for the id's latest earlier
        incarnation — the pid and exit time the shim recorded when it reaped it (the record
        outlives the shim daemon that ran it)."""
        import failpoints

        entry = self._shim_live(sid)
        if entry is None:
            return "no live shim"
        try:
            out = failpoints.ControlClient(f"unix:{entry.get('control', '')}").command(
                "late_exit", {"id": sid}
            )
        except Exception as exc:  # no earlier incarnation: a step that did nothing
            return f"not published: {describe(exc)}"[:160]
        faults.observed(S.LATE_EXIT_EFFECT, id=sid, pid=out.get("pid"))
        return f"published: pid {out.get('pid')} exited_at {out.get('exited_at_ns')}"

    def _leg_annotations(self) -> dict[str, str]:
        """What puts a new sandbox's shim on the toxic legs this schedule uses."""
        out: dict[str, str] = {}
        client = self.env.proxy.client
        if self.relay_shims:
            out[ANNOTATION_TOXIPROXY] = f"{client.host}:{client.port}"
        if self.events_proxy is not None:
            out[ANNOTATION_EVENTS_ADDRESS] = f"tcp://{self.events_proxy.listen}"
        return out

    def _shim_toxics_on(self, sid: str) -> None:
        """Put the containerd → shim toxics in force on a shim created after they were."""
        for name, step in list(self.toxic_steps.items()):
            if step.leg == "containerd-shim":
                self._shim_toxic(name, step, [sid])

    def _shim_toxic(self, name: str, step: S.Toxic, sids: list[str]) -> int:
        """``step`` on the relay proxy of each live shim of ``sids``; how many got it."""
        n = 0
        for sid in sids:
            entry = self._shim_live(sid)
            if entry is None or not entry.get("proxy"):
                continue
            tname = f"{name}-{sid}"
            try:  # a shim on its way out has deleted its proxy already: nothing to slow
                proxy = self.env.proxy.client.get(str(entry["proxy"]))
                proxy.add_toxic(step.kind, name=tname, **_toxic_attrs(step))
            except Exception as exc:
                journal.emit("explore", "shim_toxic_skipped", id=sid, error=describe(exc))
                continue
            self.shim_toxics.setdefault(name, []).append((proxy, tname))
            self._shim_toxic_at.setdefault(name, []).append((sid, time.monotonic()))
            n += 1
        return n

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
        self.toxic_steps[name] = step
        if step.leg == "containerd-shim":
            n = self._shim_toxic(name, step, sorted(set(self.created)))
            return f"added on {n} shim relay(s)" if n else "in force for shims created next"
        proxy = self.events_proxy if step.leg == "shim-containerd" else self.env.proxy
        proxy.add_toxic(step.kind, name=name, **_toxic_attrs(step))
        self.toxics.append(name)
        self._toxic_t0[name] = time.monotonic()
        return "added"

    def heal(self) -> None:
        """Remove every fault: toxics, failpoints on live shims (hangs released), pending."""
        import failpoints

        for name in self.toxics:
            step = self.toxic_steps[name]
            proxy = self.events_proxy if step.leg == "shim-containerd" else self.env.proxy
            with contextlib.suppress(Exception):
                proxy.remove_toxic(name)
            if step.leg == "shim-containerd":
                self._events_effect(name, step)
            elif step.leg == "reconciler-containerd":
                self._watch_effect(name, step)
        for name, pairs in self.shim_toxics.items():
            for proxy, tname in pairs:
                with contextlib.suppress(Exception):  # the shim (and its proxy) may be gone
                    proxy.remove_toxic(tname)
            self._shim_leg_effect(name, self.toxic_steps[name])
        self.shim_toxics.clear()
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

    def _shim_leg_effect(self, name: str, step: S.Toxic) -> None:
        """A containerd → shim toxic took effect when containerd sent a request to a shim
        while the toxic sat on that shim's relay (every byte crosses it)."""
        for sid, t0 in self._shim_toxic_at.get(name, []):
            run_dir = self.env.run_dir
            asked = merge.find(run_dir, after=t0, component="shim", event="request", id=sid)
            if asked:
                method = asked[0].fields.get("method")
                faults.observed(S.toxic_effect(step), toxic=name, method=method)
                return

    def _watch_effect(self, name: str, step: S.Toxic) -> None:
        """A reconciler → containerd toxic also took effect when it cut one of the
        reconciler's long-lived calls while in force — an exit watcher's Wait or the event
        stream — though no step's call crossed it (a kill under reset_peer: F7)."""
        t0 = self._toxic_t0.get(name, 0.0)
        for event in ("wait_failed", "event_stream_lost"):
            cut = merge.find(self.env.run_dir, after=t0, component="reconciler", event=event)
            if cut:
                error = str(cut[0].fields.get("error", ""))[:80]
                faults.observed(S.toxic_effect(step), toxic=name, cut=event, error=error)
                return

    def _events_effect(self, name: str, step: S.Toxic) -> None:
        """An events-leg toxic took effect when one of our shims published an event into it
        while it was in force: a state change it reports (a Create, Start, Pause, Resume or
        Kill it answered ok, a task exit it reaped) happened between the toxic's start and
        now. The Forward itself may end long after the heal (a ``timeout`` toxic holds it
        for the stub's 5 s deadline), so its own record is not waited for."""
        t0 = self._toxic_t0.get(name, 0.0)
        records = [r for r in merge.load(self.env.run_dir) if r.mono >= t0]
        changes = [r for r in records if _reports_change(r) and r.fields.get("id") in self.created]
        if changes:
            what = changes[0].fields.get("method") or changes[0].event
            faults.observed(S.toxic_effect(step), toxic=name, change=what)

    # -- invariants --------------------------------------------------------------------------
    def _truth(self, sid: str) -> str | None:
        try:
            return chk.shim_status(self.env.run_dir, self.env.namespace, sid)
        except chk.PROBE_ERRORS:
            return None

    def _safety(self, i: int, step: S.Step) -> None:
        assert self.host is not None
        snap = self.host.snapshot()
        for w in self._new_writes(snap):
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

    def _new_writes(self, snap: dict[str, Any]) -> list[Any]:
        """The reconciler's writes since the last look (a restarted one logs anew); notes
        the sandboxes a write showed paused, for the bindings check."""
        if snap["generation"] != self._generation:
            self._generation, self._writes_seen = snap["generation"], 0
        writes = list(snap["writes"][self._writes_seen :])
        self._writes_seen = len(snap["writes"])
        self._paused_seen |= {w.sandbox for w in writes if w.fields.get("paused_at")}
        return writes

    def _bindings(self, snap: dict[str, Any]) -> list[Finding]:
        """A sandbox the reconciler saw paused and now holds RUNNING was resumed: its
        snapshot bindings must be the sentinel (seed a: every resume path invalidates them;
        the first revision of PR #404 cleared only the markers on ``/tasks/resumed``)."""
        self._new_writes(snap)
        view = snap["view"]
        seen = sorted(self._paused_seen)
        resumed = [s for s in seen if view.get(s, {}).get("state") == "RUNNING"]
        if not resumed:
            return []
        stale = [
            f"{sid}: resumed (seen paused, now RUNNING) but {k}={view[sid].get(k)!r}, "
            f"not the sentinel {SENTINEL_BINDING!r}"
            for sid in resumed
            for k in ("runtime_snapshot_id", "restore_snapshot_id")
            if view[sid].get(k) != SENTINEL_BINDING
        ]
        return [
            chk.SandboxFinding(
                "bindings after resume",
                ok=not stale,
                symptom=stale[0] if stale else f"bindings invalidated for {', '.join(resumed)}",
                details=stale,
            )
        ]

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
        out += self._bindings(host.snapshot())
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


def _shim_journaled(
    run_dir: Any, mono: float, wall: float, event: str, method: str, sid: str
) -> bool:
    """Did a shim journal ``event`` for ``method`` on ``sid`` since ``mono``? Reads only the
    journals of other processes written to since ``wall`` (the shims'), not the whole run's:
    this is polled, and this process's journal (the reconciler's records) grows all run."""
    own = f".{os.getpid()}.jsonl"
    for path in (run_dir / "journal").glob("*.jsonl"):
        try:
            if path.name.endswith(own) or path.stat().st_mtime < wall - 1.0:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for r in merge.parse(text):
            if (
                r.mono >= mono
                and r.component == "shim"
                and r.event == event
                and r.fields.get("method") == method
                and r.fields.get("id") == sid
            ):
                return True
    return False


def _reports_change(r: Any) -> bool:
    """A shim record of a state change the shim publishes an event for."""
    if r.component != "shim":
        return False
    if r.event == "task_exited":
        return True
    return bool(
        r.event == "reply"
        and r.fields.get("method") in EVENTFUL
        and r.fields.get("outcome") == "ok"
    )


def _answer(fut: Any) -> str:
    """A finished ``start_pause``/``start_resume`` future's answer as text."""
    if fut.cancelled():
        return "cancelled (the reconciler was killed)"
    exc = fut.exception()
    if exc is not None:
        return describe(exc)[:160]
    err = fut.result()
    return "ok" if err is None else str(getattr(err, "message", err))[:160]


def _toxic_attrs(step: S.Toxic) -> dict[str, Any]:
    if step.kind == "latency":
        return {"latency": step.arg}
    return {"timeout": 0}  # reset_peer at once; timeout: hold the data until removed


def _first_leak(problem: str) -> str:
    """``leaked at teardown: <first finding>`` without the run-dir socket path."""
    lines = problem.splitlines()
    if len(lines) < 2:
        return problem
    return "leaked at teardown: " + lines[1].strip().split(" [", 1)[0]


def fp_name(annotation_key: str) -> str:
    """``io.containerd.runtime.v2.shim.failpoint.Delete.between`` -> ``shim.Delete.between``."""
    return "shim." + annotation_key.rsplit("failpoint.", 1)[-1]
