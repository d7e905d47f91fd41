"""A schedule: a list of steps in one vocabulary, as data (issue #12 §1).

Why data and not code: a schedule the explorer found must be saved, printed, shrunk, diffed
and replayed by someone who never saw the run that found it. So every step is a small frozen
dataclass with a JSON form (``{"op": "pause", "sandbox": "sb0", "timeout": 0.4}``) and a
one-line description; :func:`table` draws a schedule as the same T1…Tn table the timelines
use. Nothing here touches a process: :mod:`harness.explore.sandbox.execute` gives the steps meaning.

Logical time: a fault fires on an *event* — "the 2nd Delete" is ``nth=2``, which becomes
the failpoint term ``1*off->1*<action>`` (the first evaluation passes, the second fires) —
never on a sleep.

Sandbox-world vocabulary:

- workload: ``create``, ``pause``, ``resume`` (each with an optional caller deadline),
  ``pause_async``/``resume_async`` (the same call begun without waiting for its answer, so
  a later step overlaps it), ``kill_task`` (the sandbox's task process dies: SIGKILL from
  outside, as the OOM killer would), ``stop`` (StopPodSandbox), ``delete``
  (RemovePodSandbox), ``restart`` (the reconciler is killed -9 and started again on its
  store), ``containerd_restart`` (SIGTERM or kill -9, started again on the same root and
  state; its shims live on), ``late_exit`` (the sandbox's live shim publishes a
  ``/tasks/exit`` for an *earlier* incarnation of the same id: its recorded pid and exit
  time);
- faults: ``shim_fault`` (a failpoint term on a shim method × phase, or on one event topic
  the shim publishes — drop, duplicate, delay, or ``hold(<topic>)``: kept back until the
  next event of another topic has left, the stub reordering its own events — of one
  sandbox's shim: armed on the live shim through its control socket, else carried by the
  sandbox's next ``create`` as an annotation), ``toxic`` (on one leg: reconciler →
  containerd, containerd → shim (ttrpc, through the shim's own relay), shim → containerd
  (its event Forwards));
- ``heal``: remove every fault.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from harness.errors import ReconvergeError
from harness.shim.sites import TOPICS as EVENT_TOPICS

SCHEMA = 1
SANDBOXES = ("sb0", "sb1")
#: the shim failpoint phases per method (harness/shim/daemon.py and service.py evaluate them)
SHIM_POINTS: dict[str, tuple[str, ...]] = {
    "Pause": ("before", "after", "locked"),
    "Resume": ("before", "after", "locked"),
    "Kill": ("before", "after"),
    "Delete": ("before", "between", "after"),
    "Shutdown": ("before",),
    "State": ("before",),
    # the shim's event publisher: one point per topic (harness/shim/events.py)
    "publish": ("tasks.exit", "tasks.paused", "tasks.resumed", "tasks.start", "tasks.create"),
}
#: the topics whose next event may release a ``hold`` (every topic the stub publishes)
HOLD_TOPICS = EVENT_TOPICS
#: failpoint actions a shim fault may use, and whether they take an argument
SHIM_ACTIONS: dict[str, bool] = {
    "error": True,
    "delay": True,
    "drop": False,
    "duplicate": True,
    "hold": True,  # publish points only; the argument is the releasing topic (tasks.exit)
}
#: the toxiproxy legs a toxic may sit on: the reconciler's gRPC connection to containerd,
#: containerd's ttrpc connections to the shims (the stub's relay, ``harness/shim/relay.py``)
#: and the shims' event Forwards to containerd (``io.reconverge.stub.events_address``)
LEGS = ("reconciler-containerd", "containerd-shim", "shim-containerd")
TOXICS: dict[str, bool] = {"reset_peer": False, "latency": True, "timeout": False}
#: the ``faults.observed`` name of a reconciler kill -9 + restart step
RESTART_EFFECT = "reconciler kill -9"
#: the ``faults.observed`` names of a containerd restart step (graceful, kill -9)
CONTAINERD_EFFECTS = {False: "containerd restart (SIGTERM)", True: "containerd kill -9"}
#: the ``faults.observed`` name of a late exit published for an earlier incarnation
LATE_EXIT_EFFECT = "late exit of an earlier incarnation"


class Step:
    """Base of every step: ``op`` names it in JSON; ``describe()`` is its table row."""

    op: ClassVar[str] = ""

    def describe(self) -> str:  # pragma: no cover - every step overrides it
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, **asdict(self)}  # type: ignore[call-overload]

    @property
    def target(self) -> str:
        """The sandbox this step acts on ("" for steps on the whole world)."""
        return str(getattr(self, "sandbox", ""))


def _deadline(timeout: float | None) -> str:
    return "" if timeout is None else f" (caller deadline {timeout:g}s)"


@dataclass(frozen=True)
class Create(Step):
    op: ClassVar[str] = "create"
    sandbox: str

    def describe(self) -> str:
        return f"create {self.sandbox}"


@dataclass(frozen=True)
class Pause(Step):
    op: ClassVar[str] = "pause"
    sandbox: str
    timeout: float | None = None

    def describe(self) -> str:
        return f"pause {self.sandbox}{_deadline(self.timeout)}"


@dataclass(frozen=True)
class Resume(Step):
    op: ClassVar[str] = "resume"
    sandbox: str
    timeout: float | None = None

    def describe(self) -> str:
        return f"resume {self.sandbox}{_deadline(self.timeout)}"


@dataclass(frozen=True)
class PauseAsync(Step):
    """Begin a Pause and go on: the next steps overlap it (a Resume, a Stop, a restart)."""

    op: ClassVar[str] = "pause_async"
    sandbox: str
    timeout: float | None = None

    def describe(self) -> str:
        return f"begin pause {self.sandbox}{_deadline(self.timeout)}, not waiting"


@dataclass(frozen=True)
class ResumeAsync(Step):
    """Begin a Resume and go on (the twin of :class:`PauseAsync`)."""

    op: ClassVar[str] = "resume_async"
    sandbox: str
    timeout: float | None = None

    def describe(self) -> str:
        return f"begin resume {self.sandbox}{_deadline(self.timeout)}, not waiting"


@dataclass(frozen=True)
class KillTask(Step):
    op: ClassVar[str] = "kill_task"
    sandbox: str

    def describe(self) -> str:
        return f"kill -9 the task of {self.sandbox}"


@dataclass(frozen=True)
class Stop(Step):
    op: ClassVar[str] = "stop"
    sandbox: str

    def describe(self) -> str:
        return f"stop {self.sandbox}"


@dataclass(frozen=True)
class Delete(Step):
    op: ClassVar[str] = "delete"
    sandbox: str

    def describe(self) -> str:
        return f"delete {self.sandbox}"


@dataclass(frozen=True)
class Restart(Step):
    op: ClassVar[str] = "restart"

    def describe(self) -> str:
        return "reconciler kill -9 + restart"


@dataclass(frozen=True)
class ContainerdRestart(Step):
    """The world's containerd stops (SIGTERM, or SIGKILL with ``kill``) and starts again on
    the same root and state: its shims live on and are reconnected, its event streams end."""

    op: ClassVar[str] = "containerd_restart"
    kill: bool = False

    def describe(self) -> str:
        return "containerd kill -9 + restart" if self.kill else "containerd SIGTERM + restart"


@dataclass(frozen=True)
class LateExit(Step):
    """The live shim of ``sandbox`` publishes ``/tasks/exit`` for the id's previous
    incarnation (its recorded pid and exit time): an exit that arrives after the id was
    deleted and created again."""

    op: ClassVar[str] = "late_exit"
    sandbox: str

    def describe(self) -> str:
        return f"late /tasks/exit of the previous incarnation of {self.sandbox}"


@dataclass(frozen=True)
class ShimFault(Step):
    """A failpoint term on ``shim.<method>.<phase>`` of one sandbox's shim."""

    op: ClassVar[str] = "shim_fault"
    sandbox: str
    method: str
    phase: str
    action: str
    arg: str = ""
    nth: int = 1  # fire on the nth evaluation (logical time), once

    @property
    def point(self) -> str:
        return f"shim.{self.method}.{self.phase}"

    @property
    def term(self) -> str:
        """The failpoint term: ``1*off->`` per skipped evaluation, then one firing."""
        act = f"{self.action}({self.arg})" if self.arg else self.action
        return "1*off->" * (self.nth - 1) + f"1*{act}"

    @property
    def annotation(self) -> tuple[str, str]:
        """The ``failpoint_annotations`` key/value the shim reads at create."""
        return f"{self.method}_{self.phase}", self.term

    def describe(self) -> str:
        return f"fault {self.point}={self.term} on {self.sandbox}"


@dataclass(frozen=True)
class Toxic(Step):
    op: ClassVar[str] = "toxic"
    kind: str
    leg: str = LEGS[0]
    arg: int = 0

    def describe(self) -> str:
        arg = f"({self.arg})" if TOXICS.get(self.kind) else ""
        return f"toxic {self.kind}{arg} on {self.leg.replace('-', ' → ')}"


@dataclass(frozen=True)
class Heal(Step):
    op: ClassVar[str] = "heal"

    def describe(self) -> str:
        return "heal: remove every fault"


STEPS: dict[str, type[Step]] = {
    c.op: c
    for c in (
        Create,
        Pause,
        Resume,
        PauseAsync,
        ResumeAsync,
        KillTask,
        Stop,
        Delete,
        Restart,
        ContainerdRestart,
        LateExit,
        ShimFault,
        Toxic,
        Heal,
    )
}


@dataclass(frozen=True)
class Schedule:
    """Steps for one world, with the bug switches the reconciler runs with."""

    steps: tuple[Step, ...]
    world: str = "sandbox"
    bugs: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "world": self.world,
            "bugs": list(self.bugs),
            "steps": [s.to_json() for s in self.steps],
        }

    def dumps(self) -> str:
        """Canonical text: the same schedule always gives the same string (a cache key)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "schedule") -> Schedule:
        if not isinstance(data, Mapping):
            raise ReconvergeError(
                f"{source}: a schedule is a JSON object, got {type(data).__name__}"
            )
        world = str(data.get("world", "sandbox"))
        from harness.explore import worlds

        if world not in worlds.WORLDS:
            known = ", ".join(worlds.WORLDS)
            raise ReconvergeError(f"{source}: unknown world {world!r}; known: {known}")
        raw = data.get("steps")
        if not isinstance(raw, list):
            raise ReconvergeError(f"{source}: 'steps' must be a list of steps")
        steps = tuple(
            step_from_json(s, source=f"{source} step {i}", world=world)
            for i, s in enumerate(raw, 1)
        )
        return cls(steps, world=world, bugs=tuple(str(b) for b in data.get("bugs", ())))

    @classmethod
    def loads(cls, text: str, *, source: str = "schedule") -> Schedule:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReconvergeError(f"{source}: not JSON: {exc}") from None
        return cls.from_json(data, source=source)

    def faults(self) -> list[str]:
        """The failpoint names this schedule arms (what ``faults.fired`` should count)."""
        return sorted({s.point for s in self.steps if isinstance(s, ShimFault)})

    def effects(self) -> list[str]:
        """Faults without a failpoint: a restart (journaled when done), a toxic (journaled
        when a call under it failed or was slowed)."""
        out = [RESTART_EFFECT] if any(isinstance(s, Restart) for s in self.steps) else []
        out += sorted(
            {CONTAINERD_EFFECTS[s.kill] for s in self.steps if isinstance(s, ContainerdRestart)}
        )
        out += [LATE_EXIT_EFFECT] if any(isinstance(s, LateExit) for s in self.steps) else []
        return out + sorted({toxic_effect(s) for s in self.steps if isinstance(s, Toxic)})

    def table(self, title: str | None = None) -> str:
        return table(self.steps, title=title)


def step_from_json(data: Any, *, source: str = "step", world: str = "sandbox") -> Step:
    """One step of ``world``'s vocabulary from its JSON form; a wrong op or field is one
    clear error."""
    if not isinstance(data, Mapping) or "op" not in data:
        raise ReconvergeError(f"{source}: a step is an object with an 'op'")
    from harness.explore import worlds

    hooks = worlds.hooks(world)
    steps, check = hooks.STEPS, hooks.validate_step
    cls = steps.get(str(data["op"]))
    if cls is None:
        raise ReconvergeError(f"{source}: unknown op {data['op']!r}; known: {', '.join(steps)}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    extra = sorted(set(data) - names - {"op"})
    if extra:
        raise ReconvergeError(f"{source}: {cls.op} has no field {', '.join(extra)}")
    try:
        step = cls(**{k: v for k, v in data.items() if k != "op"})
    except TypeError as exc:
        raise ReconvergeError(f"{source}: {cls.op}: {exc}") from None
    check(step, source=source)
    return step


def validate(step: Step, *, source: str = "step") -> None:
    """Reject steps the world cannot perform (before anything starts)."""
    if step.target and step.target not in SANDBOXES:
        raise ReconvergeError(
            f"{source}: unknown sandbox {step.target!r}; known: {', '.join(SANDBOXES)}"
        )
    if isinstance(step, ShimFault):
        phases = SHIM_POINTS.get(step.method)
        if phases is None or step.phase not in phases:
            known = ", ".join(f"{m}.{p}" for m, ps in SHIM_POINTS.items() for p in ps)
            raise ReconvergeError(f"{source}: no shim point {step.point}; known: {known}")
        if step.action not in SHIM_ACTIONS:
            raise ReconvergeError(f"{source}: unknown shim action {step.action!r}")
        if step.action == "hold":
            topics = HOLD_TOPICS
            if step.method != "publish" or step.arg not in topics:
                raise ReconvergeError(
                    f"{source}: hold is for shim.publish.<topic> points and takes the "
                    f"releasing topic ({', '.join(topics)}); got {step.point} hold({step.arg})"
                )
        if step.nth < 1:
            raise ReconvergeError(f"{source}: nth must be ≥ 1, got {step.nth}")
    if isinstance(step, Toxic):
        if step.kind not in TOXICS:
            raise ReconvergeError(
                f"{source}: unknown toxic {step.kind!r}; known: {', '.join(TOXICS)}"
            )
        if step.leg not in LEGS:
            raise ReconvergeError(f"{source}: unknown leg {step.leg!r}; known: {', '.join(LEGS)}")


def toxic_effect(step: Toxic) -> str:
    """The ``faults.observed`` name of a toxic's effect."""
    return f"toxic {step.kind} on {step.leg}"


def table(steps: Sequence[Step], *, title: str | None = None) -> str:
    """T1…Tn, one row per step (the style of ``harness.report.timeline``)."""
    rows = [(f"T{i}", s.op, s.describe()) for i, s in enumerate(steps, 1)]
    if not rows:
        return (title + "\n" if title else "") + "(empty schedule)"
    w0 = max(len("T"), *(len(r[0]) for r in rows))
    w1 = max(len("step"), *(len(r[1]) for r in rows))
    header = f"{'T'.ljust(w0)}  {'step'.ljust(w1)}"
    lines = [title] if title else []
    lines += [header + "  detail", "-" * (len(header) + 8)]
    lines += [f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in rows]
    return "\n".join(lines)


@dataclass
class Saved:
    """A schedule saved with what it did: the file ``reconverge repro`` replays.

    ``original`` is the failing schedule as first found, before shrinking (optional: files
    written before it existed, and hand-written ones, load without it). It is kept so a
    reader can see what the shrinker removed, and ``original_confirm`` holds its k-of-n
    confirmation next to ``meta["confirm"]`` (the shrunk one's). A replay and a regression
    case run ``schedule`` only.
    """

    schedule: Schedule
    expected: str  # the Outcome a replay must reproduce
    symptom: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    original: Schedule | None = None
    original_confirm: str = ""

    def to_json(self) -> dict[str, Any]:
        out = self.schedule.to_json() | {
            "expected": self.expected,
            "symptom": self.symptom,
            "meta": self.meta,
        }
        if self.original is not None:
            out["original"] = {
                "steps": [s.to_json() for s in self.original.steps],
                "confirm": self.original_confirm,
            }
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str) -> Saved:
        sched = Schedule.from_json(data, source=source)
        expected = str(data.get("expected", ""))
        if not expected:
            raise ReconvergeError(f"{source}: no 'expected' outcome (CONVERGED, DIVERGED, …)")
        original, confirm = None, ""
        raw = data.get("original")
        if raw is not None:
            if not isinstance(raw, Mapping):
                raise ReconvergeError(f"{source}: 'original' must be an object with 'steps'")
            original = Schedule.from_json(
                {"world": sched.world, "bugs": list(sched.bugs), "steps": raw.get("steps")},
                source=f"{source} original",
            )
            confirm = str(raw.get("confirm", ""))
        return cls(
            sched,
            expected,
            str(data.get("symptom", "")),
            dict(data.get("meta", {})),
            original,
            confirm,
        )
