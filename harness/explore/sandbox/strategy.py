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
    # the stub reordering its own events: one topic held until the next event of another
    FaultChoice("publish", "tasks.paused", "hold", "tasks.resumed"),
    FaultChoice("publish", "tasks.resumed", "hold", "tasks.paused"),
    FaultChoice("publish", "tasks.exit", "hold", "tasks.delete"),
    FaultChoice("Resume", "before", "delay", "2500"),
)
#: (kind, arg, leg); the first entries are the simplest (what shrinking moves towards).
#: Latency 300 ms: longer than nothing, shorter than every deadline but the exit handler's
#: share of a Delete; ``timeout`` on the events leg holds every Forward (the stub gives up
#: on it after its own deadline: the event is lost). Not drawn: ``reset_peer``/``timeout`` on
#: containerd → shim — containerd 1.6.20 never reconnects to a shim whose connection broke,
#: it runs the shim's ``delete`` and forgets a shim that lives on (observed and asserted in
#: tests/integration/shim/test_shim_legs_through_toxiproxy.py): every such schedule would
#: "fail" with every fix on by containerd's own leak. A schedule file may still use them.
TOXIC_MENU: tuple[tuple[str, int, str], ...] = (
    ("reset_peer", 0, "reconciler-containerd"),
    ("latency", 300, "reconciler-containerd"),
    ("timeout", 0, "shim-containerd"),
    ("latency", 300, "shim-containerd"),
    ("latency", 300, "containerd-shim"),
)
#: the toxic menu drawn with ``reset_peer`` (the reconciler's own leg: a reply lost *and*
#: its status query failing, so only an event can converge the view) twice as often
TOXIC_WEIGHTS: tuple[int, ...] = (0, 0, 1, 2, 3, 4)
CALLER_DEADLINES: tuple[float | None, ...] = (None, 0.4)
#: the swarm: how many fault-menu entries one schedule draws its fault steps from
SWARM_MAX = 3
#: the schedule lengths drawn half the time: the known bug shapes are 3–5 steps, and a
#: longer schedule's later steps (a restart, a begun call) often repair what an earlier
#: one broke (seed a's defence lines back each other up)
SHORT = (4, 6)


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
    created: dict[str, int] = field(default_factory=dict)  # creates per id (incarnations)
    begun: str = ""  # the sandbox whose call the previous step began without waiting
    armed: dict[str, set[str]] = field(default_factory=dict)  # faulted methods per sandbox
    toxic: bool = False  # a toxic is in force (until a heal)
    just: str = ""  # the method (or topic) armed last, not met yet
    just_sid: str = ""
    entries: dict[str, set[FaultChoice]] = field(default_factory=dict)  # swarm entries armed
    unarmed: dict[str, int] = field(default_factory=dict)  # swarm entries not armed yet


#: which ops make a faulted method run (a fault meets the call it breaks): a Pause fault
#: is met by a pause, an exit-topic fault by a task that dies, a State fault by the status
#: query after a failed call (or a DeadGC probe)
TRIGGERS: dict[str, tuple[str, ...]] = {
    "Pause": ("pause", "pause_async"),
    "Resume": ("pause", "resume", "resume_async"),  # a running sandbox is paused first
    "Kill": ("stop",),
    "Delete": ("kill_task", "stop"),
    "Shutdown": ("kill_task", "stop"),
    "State": ("pause", "resume"),
    "tasks.paused": ("pause", "pause_async"),
    "tasks.resumed": ("pause", "resume", "resume_async"),
    "tasks.exit": ("kill_task", "stop"),
}


#: the event each call's outcome is also published on: a reply lost (``after``) and its
#: event lost are the two halves of one outcome lost (seed a's defence lines: the status
#: query after a failed call, and the event handler; each one off alone is repaired by the
#: other, so the swarm pairs them)
TOPIC = {"Pause": "tasks.paused", "Resume": "tasks.resumed", "Delete": "tasks.exit"}


def partners(faults: Sequence[FaultChoice], i: int) -> list[int]:
    """The entries that lose the rest of entry ``i``'s outcome: a reply fault's event drops,
    an event drop's reply faults (``after``); empty for the others."""
    f = faults[i]
    if f.phase == "after" and f.method in TOPIC:
        want = [
            (g.method, g.phase, g.action) == ("publish", TOPIC[f.method], "drop") for g in faults
        ]
    elif f.method == "publish" and f.action == "drop":
        want = [g.phase == "after" and TOPIC.get(g.method) == f.phase for g in faults]
    else:
        return []
    return [j for j, ok in enumerate(want) if ok]


def _swarm(faults: Sequence[FaultChoice]) -> st.SearchStrategy[list[int]]:
    """Indices of 1..SWARM_MAX entries: an anchor (the entries that lose an outcome — a
    ``drop`` — twice as likely), its partner two times in three, then any others."""
    anchors = [i for i, f in enumerate(faults) for _ in range(2 if f.action == "drop" else 1)]

    @st.composite
    def pick(draw: st.DrawFn) -> list[int]:
        anchor = draw(st.sampled_from(anchors))
        chosen = {anchor}
        mates = partners(faults, anchor)
        if mates and draw(st.sampled_from((True, True, False))):
            chosen.add(draw(st.sampled_from(mates)))
        more = st.sets(st.integers(0, len(faults) - 1), max_size=SWARM_MAX - len(chosen))
        return sorted(chosen | draw(more))

    return pick()


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

        swarm = d("swarm", _swarm(faults))
        short = st.integers(min(SHORT[0], max_steps), min(SHORT[1], max_steps))
        n = d("length", st.one_of(short, st.integers(1, max_steps)))
        model = _Model()
        entries = [faults[j] for j in swarm]
        steps: list[S.Step] = []
        if len(entries) + 2 <= max_steps and d("armed_first", st.booleans()):
            steps += _armed_first(model, ids[0], entries)
        for i in range(len(steps), max(n, len(steps) + 1)):
            steps.append(_step(d, f"step{i + 1}", model, ids, entries, toxics))
        return S.Schedule(tuple(steps), bugs=tuple(bugs))

    return build()


def _armed_first(model: _Model, sid: str, entries: Sequence[FaultChoice]) -> list[S.Step]:
    """Every swarm entry armed for its first call, then the sandbox created: the suites'
    shape (failpoints set at create), which a walk reaches only by a run of lucky draws —
    the outcome-losing pairs above need both halves armed before the call they break."""
    steps: list[S.Step] = []
    for f in entries:
        point = f.phase if f.method == "publish" else f.method
        model.armed.setdefault(sid, set()).add(point)
        model.entries.setdefault(sid, set()).add(f)
        steps.append(S.ShimFault(sid, f.method, f.phase, f.action, f.arg, 1))
    first = entries[0]
    model.just = first.phase if first.method == "publish" else first.method
    model.just_sid = sid
    model.exists[sid], model.paused[sid], model.created[sid] = True, False, 1
    return [*steps, S.Create(sid)]


def _step(
    d: Any,
    where: str,
    model: _Model,
    ids: Sequence[str],
    swarm: Sequence[FaultChoice],
    toxics: bool,
) -> S.Step:
    sid = d(f"{where}.sandbox", st.sampled_from(list(ids))) if len(ids) > 1 else ids[0]
    op = d(f"{where}.op", st.sampled_from(_ops(model, sid, toxics)))
    model.begun = sid if op.endswith("_async") else ""
    if op not in ("create", "fault"):  # a fault armed before its sandbox: met after create
        model.just = model.just_sid = ""
    if op == "create":
        model.exists[sid] = True
        model.paused[sid] = False
        model.created[sid] = model.created.get(sid, 0) + 1
        return S.Create(sid)
    if op == "fault":
        # the entries not armed on this sandbox yet first: k fault steps arm k entries
        fresh = [f for f in swarm if f not in model.entries.setdefault(sid, set())]
        pool = fresh or list(swarm)
        f = pool[d(f"{where}.fault", st.integers(0, len(pool) - 1))] if len(pool) > 1 else pool[0]
        model.entries[sid].add(f)
        model.unarmed[sid] = len(fresh) - 1 if fresh else 0
        nth = d(f"{where}.nth", st.sampled_from([1, 1, 2]))
        point = f.phase if f.method == "publish" else f.method
        model.armed.setdefault(sid, set()).add(point)
        model.just, model.just_sid = point, sid
        return S.ShimFault(sid, f.method, f.phase, f.action, f.arg, nth)
    if op == "toxic":
        kind, arg, leg = TOXIC_MENU[d(f"{where}.toxic", st.sampled_from(TOXIC_WEIGHTS))]
        model.toxic = True
        return S.Toxic(kind, leg=leg, arg=arg)
    if op in ("pause", "resume", "pause_async", "resume_async"):
        timeout = d(f"{where}.deadline", st.sampled_from(list(CALLER_DEADLINES)))
        model.paused[sid] = op.startswith("pause")
        cls = {
            "pause": S.Pause,
            "resume": S.Resume,
            "pause_async": S.PauseAsync,
            "resume_async": S.ResumeAsync,
        }[op]
        return cls(sid, timeout)
    if op == "containerd_restart":
        return S.ContainerdRestart(kill=d(f"{where}.kill", st.booleans()))
    if op == "delete":
        model.exists[sid] = False
        return S.Delete(sid)
    if op == "heal":
        model.armed.clear()
        model.entries.clear()
        model.toxic = False
    simple: dict[str, Any] = {
        "stop": S.Stop,
        "kill_task": S.KillTask,
        "late_exit": S.LateExit,
    }
    if op in simple:
        return simple[op](sid)
    return S.Heal() if op == "heal" else S.Restart()


def _ops(model: _Model, sid: str, toxics: bool) -> list[str]:
    """The ops to draw from for ``sid``, weighted by repetition.

    A world without its sandbox mostly creates it. A live one is mostly faulted and driven
    the way its state invites — a running sandbox paused, a paused one resumed (each also as
    a call begun without waiting, so the next step overlaps it) — with toxics, kills, stops,
    restarts of either process and a re-create under the same id as rarer spices; a late
    exit only once the id has an earlier incarnation.
    """
    tox = ["toxic"] if toxics else []
    heal = ["heal"] if model.armed or model.toxic else []  # nothing to heal: no heal
    if not model.exists.get(sid, False):
        # arm first (the suites' way: failpoints set at create), then create
        ops = ["create"] * 4 + ["fault"] * 3 + [*heal, "restart", *tox]
        if model.just and model.just_sid == sid and model.unarmed.get(sid, 0):
            ops += ["fault"] * 6
        return ops
    if model.begun == sid:  # a call is under way: mostly something that overlaps it
        turn = "resume" if model.paused.get(sid, False) else "pause"
        return ["restart"] * 2 + [turn] * 2 + ["containerd_restart", "kill_task", "stop", *tox]
    if model.paused.get(sid, False):
        ops = ["resume"] * 2 + ["resume_async"] * 2 + ["pause"]
    else:
        ops = ["pause"] * 2 + ["pause_async"] * 2 + ["resume"]
    ops += ["fault"] * 3 + tox * 2 + ["kill_task"] * 2
    ops += ["stop", "delete", *heal, "restart", "containerd_restart", "create"]
    if model.created.get(sid, 0) >= 2:
        ops.append("late_exit")
    # an armed fault makes the ops that meet it likelier (those this state allows); a toxic
    # in force, the call this state invites (it crosses every leg: reconciler, shim, events)
    for method in sorted(model.armed.get(sid, ())):
        ops += [op for op in TRIGGERS.get(method, ()) if op in ops] * 2
    if model.toxic:
        ops += ["resume" if model.paused.get(sid, False) else "pause"] * 4
    elif model.paused.get(sid, False):  # a paused sandbox: a toxic before its resume
        ops += tox * 3
    # a fault just armed: mostly the call it breaks next (a pause without a caller deadline
    # meeting a lost Pause reply), or its partner fault first (a reply lost, then its event)
    if model.just and model.just_sid == sid:
        ops += [op for op in TRIGGERS.get(model.just, ()) if op in ops] * 6
        ops += ["fault"] * (6 if model.unarmed.get(sid, 0) else 0)
    return ops
