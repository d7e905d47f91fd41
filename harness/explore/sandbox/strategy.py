"""Hypothesis strategies over the schedule vocabulary, with every draw journaled.

Why a model-guided composite and not independent steps: drawn independently, most steps
would act on a sandbox that does not exist and a fault would rarely meet the operation it
breaks, so a real-process budget of a few schedules a minute would find little. Here each
step is drawn against a tiny model (which sandboxes exist, which are paused) and the fault
menu is *swarmed*: each schedule first picks one or two menu entries and its fault steps use
only those, so a schedule concentrates on a few faults (swarm testing). Shrinking still
works on the underlying choices: Hypothesis deletes steps and lowers choices; the first
entries of every choice list are the simplest (one sandbox, the first fault, ``nth=1``).

Every draw is appended to a :class:`DrawLog` with its index, so ``--check-determinism``
can diff two runs of one seed draw by draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from harness.explore import schedule as S
from harness.explore.draws import DrawLog


@dataclass(frozen=True)
class FaultChoice:
    """One entry of the fault menu: a shim point with an action that means something there."""

    method: str
    phase: str
    action: str
    arg: str = ""

    @property
    def name(self) -> str:
        return f"{self.method}.{self.phase}={self.action}" + (f"({self.arg})" if self.arg else "")


#: Delays are absolute milliseconds, chosen against the suites' scaled timing (scale 0.05:
#: exit handler 0.5 s, pause/resume deadline 1.5 s, status query 0.5 s): "shorter than the
#: exit handler" (300), "longer than the exit handler, shorter than the pause deadline"
#: (1200), "longer than the pause deadline" (2500).
FAULT_MENU: tuple[FaultChoice, ...] = (
    FaultChoice("Shutdown", "before", "error", "please retry"),
    FaultChoice("Delete", "between", "delay", "300"),
    FaultChoice("Delete", "before", "error", "retry"),
    FaultChoice("Delete", "before", "delay", "1200"),
    FaultChoice("Pause", "after", "delay", "1200"),
    FaultChoice("Pause", "after", "drop"),
    FaultChoice("Pause", "before", "delay", "2500"),
    FaultChoice("Pause", "locked", "delay", "1200"),
    FaultChoice("Resume", "after", "delay", "1200"),
    FaultChoice("Resume", "after", "drop"),
    FaultChoice("State", "before", "delay", "1200"),
    FaultChoice("State", "before", "error", "boom"),
    FaultChoice("Kill", "before", "error", "boom"),
    FaultChoice("Delete", "between", "delay", "1200"),
    FaultChoice("publish", "tasks.exit", "drop"),
    FaultChoice("publish", "tasks.exit", "duplicate", "1"),
    FaultChoice("publish", "tasks.paused", "drop"),
    FaultChoice("publish", "tasks.resumed", "drop"),
)
TOXIC_MENU: tuple[tuple[str, int], ...] = (("reset_peer", 0), ("latency", 300))
CALLER_DEADLINES: tuple[float | None, ...] = (None, 0.4)


def menu(only: Sequence[str] = ()) -> tuple[FaultChoice, ...]:
    """The fault menu, or the entries whose name starts with one of ``only``
    (``Shutdown.before`` keeps every Shutdown.before entry)."""
    if not only:
        return FAULT_MENU
    chosen = tuple(f for f in FAULT_MENU if any(f.name.startswith(o) for o in only))
    if not chosen:
        from harness.errors import ReconvergeError

        known = ", ".join(f.name for f in FAULT_MENU)
        raise ReconvergeError(f"--faults {','.join(only)} matches no fault; known: {known}")
    return chosen


@dataclass
class _Model:
    """Just enough to draw plausible steps; the real outcome of a step may differ."""

    exists: dict[str, bool] = field(default_factory=dict)
    paused: dict[str, bool] = field(default_factory=dict)


def schedules(
    *,
    max_steps: int = 8,
    sandboxes: int = 1,
    faults: Sequence[FaultChoice] = FAULT_MENU,
    toxics: bool = True,
    bugs: Sequence[str] = (),
    log: DrawLog | None = None,
) -> st.SearchStrategy[S.Schedule]:
    """Schedules of 1..``max_steps`` steps over ``sandboxes`` sandboxes (sb0, sb1…)."""
    ids = S.SANDBOXES[: max(1, min(sandboxes, len(S.SANDBOXES)))]
    faults = tuple(faults)
    log = log if log is not None else DrawLog()

    @st.composite
    def build(draw: st.DrawFn) -> S.Schedule:
        log.reset()

        def d(what: str, strategy: st.SearchStrategy[Any]) -> Any:
            return log.note(what, draw(strategy))

        swarm = sorted(d("swarm", st.sets(st.integers(0, len(faults) - 1), min_size=1, max_size=2)))
        n = d("length", st.integers(1, max_steps))
        model = _Model()
        steps: list[S.Step] = []
        for i in range(n):
            steps.append(_step(d, f"step{i + 1}", model, ids, [faults[j] for j in swarm], toxics))
        return S.Schedule(tuple(steps), bugs=tuple(bugs))

    return build()


def _step(
    d: Any,
    where: str,
    model: _Model,
    ids: Sequence[str],
    swarm: Sequence[FaultChoice],
    toxics: bool,
) -> S.Step:
    sid = d(f"{where}.sandbox", st.sampled_from(list(ids))) if len(ids) > 1 else ids[0]
    live = model.exists.get(sid, False)
    # weights by repetition: a world without its sandbox mostly creates it; a live one is
    # mostly faulted and driven (heal, restart, toxics, a re-create are rarer spices)
    if not live:
        ops = ["create"] * 4 + ["fault", "heal", "restart", *(["toxic"] if toxics else [])]
    else:
        ops = ["fault", "stop", "kill_task", "pause", "resume"] * 2
        ops += ["delete", "heal", "restart", *(["toxic"] if toxics else [])]
        ops += ["create"]  # recreate under the same id (fails while it lives: still a step)
    op = d(f"{where}.op", st.sampled_from(ops))
    if op == "create":
        model.exists[sid] = True
        model.paused[sid] = False
        return S.Create(sid)
    if op == "fault":
        f = (
            swarm[d(f"{where}.fault", st.integers(0, len(swarm) - 1))]
            if len(swarm) > 1
            else swarm[0]
        )
        nth = d(f"{where}.nth", st.sampled_from([1, 2]))
        return S.ShimFault(sid, f.method, f.phase, f.action, f.arg, nth)
    if op == "toxic":
        kind, arg = TOXIC_MENU[d(f"{where}.toxic", st.integers(0, len(TOXIC_MENU) - 1))]
        return S.Toxic(kind, arg=arg)
    if op in ("pause", "resume"):
        timeout = d(f"{where}.deadline", st.sampled_from(list(CALLER_DEADLINES)))
        model.paused[sid] = op == "pause"
        return S.Pause(sid, timeout) if op == "pause" else S.Resume(sid, timeout)
    if op == "delete":
        model.exists[sid] = False
        return S.Delete(sid)
    simple: dict[str, Any] = {
        "stop": S.Stop,
        "kill_task": S.KillTask,
    }
    if op in simple:
        return simple[op](sid)
    return S.Heal() if op == "heal" else S.Restart()
