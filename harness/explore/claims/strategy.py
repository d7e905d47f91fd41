"""Hypothesis strategies over the claims vocabulary, with every draw journaled.

Why the same shape as the sandbox world's (:mod:`harness.explore.sandbox.strategy`): each
schedule costs seconds of real API-server and operator work, so steps are drawn against a
tiny model (which claims exist, how many members the claim set has) instead of blindly, and
the fault menu is *swarmed*: a schedule first picks one or two menu entries and its fault
steps use only those. Three cheap steps are always on offer besides the swarm — an etcd
compaction, an operator restart and a heal — because they matter mostly in combination
with a swarm fault (a compaction only bites a watch that was cut before it).

The first entry of every choice list is the simplest (the first claim, an idle pod,
``nth=1``), so Hypothesis's shrinker, which lowers choices, lands on readable schedules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from harness.errors import ReconvergeError
from harness.explore import schedule as S
from harness.explore.claims import steps as C
from harness.explore.draws import DrawLog


@dataclass(frozen=True)
class FaultChoice:
    """One entry of the fault menu: its name (``--faults`` prefix) and the step it makes."""

    name: str
    step: S.Step
    toxic: bool = False

    def make(self, nth: int) -> S.Step:
        """The step, with ``nth`` for an intake fault (logical time)."""
        if isinstance(self.step, C.Intake):
            return C.Intake(self.step.kind, self.step.action, nth)
        return self.step


#: The default menu. Latencies are absolute milliseconds against the suites' time scale
#: (0.1: requeue 0.2 s, cache wait 1 s, watch read timeout 3 s): 300 ms slows every request
#: and event without reaching any timeout.
FAULT_MENU: tuple[FaultChoice, ...] = (
    FaultChoice("toxic.reset_peer.watch", C.Toxic("reset_peer", "watch"), toxic=True),
    FaultChoice("toxic.down.watch", C.Toxic("down", "watch"), toxic=True),
    FaultChoice("toxic.silent.watch", C.Toxic("silent", "watch"), toxic=True),
    FaultChoice("toxic.reset_peer.api", C.Toxic("reset_peer", "api"), toxic=True),
    FaultChoice("toxic.latency.api", C.Toxic("latency", "api", 300), toxic=True),
    FaultChoice("apiserver.restart", C.ApiserverRestart()),
    FaultChoice("intake.pods.duplicate", C.Intake("pods", "duplicate")),
    FaultChoice("intake.cnclaims.duplicate", C.Intake("cnclaims", "duplicate")),
    # a dropped or reordered event: the fixed operator's resync (an idle stream's read
    # timeout re-lists) heals it; ``no_periodic_resync`` does not
    FaultChoice("intake.pods.drop", C.Intake("pods", "drop")),
    FaultChoice("intake.cnclaims.drop", C.Intake("cnclaims", "drop")),
    FaultChoice("intake.pods.reorder", C.Intake("pods", "reorder")),
    FaultChoice("intake.cnclaims.reorder", C.Intake("cnclaims", "reorder")),
)
#: Only when named with ``--faults``.
OPT_IN: tuple[FaultChoice, ...] = (
    FaultChoice("toxic.latency.watch", C.Toxic("latency", "watch", 300), toxic=True),
)
NTH = (1, 2)


def menu(only: Sequence[str] = (), *, toxics: bool = True) -> tuple[FaultChoice, ...]:
    """The fault menu, or every entry (opt-in ones too) whose name starts with one of
    ``only``; ``toxics=False`` removes the toxics. An empty result is one clear error."""
    if only:
        chosen = tuple(f for f in FAULT_MENU + OPT_IN if any(f.name.startswith(o) for o in only))
        if not chosen:
            known = ", ".join(f.name for f in FAULT_MENU + OPT_IN)
            raise ReconvergeError(f"--faults {','.join(only)} matches no fault; known: {known}")
    else:
        chosen = FAULT_MENU
    return tuple(f for f in chosen if toxics or not f.toxic)


@dataclass
class _Model:
    """Just enough to draw plausible steps; the real outcome of a step may differ."""

    #: "claims"/"pods": standalone claims c0, c1 (after a migration, claim deletions or
    #: pod deaths come first); "set": the members of claim set s0
    focus: str = "claims"
    claims: set[str] = field(default_factory=set)
    replicas: int = 0
    #: a watch fault that outlives reconnects is on, and something changed behind it: a
    #: compaction now means the resumed watch asks for a compacted revision (410 Gone)
    cut: bool = False
    dirty: bool = False
    #: "workload": faults are spices among the workload; "faults": a fault comes first
    lead: str = "workload"
    faulted: bool = False
    #: claims the schedule migrated (their deletion, or their pods', is what bites then)
    migrated: list[str] = field(default_factory=list)

    def refs(self) -> list[str]:
        """Live claim references of the focus, in a stable order."""
        if self.focus == "set":
            return [f"{C.SETS[0]}[{i}]" for i in range(self.replicas)]

        return [c for c in C.CLAIMS if c in self.claims]


#: what a schedule drives: standalone claims, or the claim set's members (a set member
#: whose pod dies is deleted and replaced by its set, a standalone claim must rebind)
FOCUS = ("claims", "set", "pods")
#: ops that write to the truth (a change behind a cut watch)
WORKLOAD = ("create_claim", "scale_set", "migrate", "delete_pod", "recreate_pod", "pod_phase")
WORKLOAD += ("delete_claim",)


def schedules(
    *,
    max_steps: int = 8,
    faults: Sequence[FaultChoice] = FAULT_MENU,
    bugs: Sequence[str] = (),
    log: DrawLog | None = None,
) -> st.SearchStrategy[S.Schedule]:
    """Schedules of 1..``max_steps`` claims-world steps (at least 2 drawn when allowed: a
    single step rarely means anything, and the step-deletion pass still reaches 1)."""
    faults = tuple(faults)
    log = log if log is not None else DrawLog()

    @st.composite
    def build(draw: st.DrawFn) -> S.Schedule:
        log.reset()

        def d(what: str, strategy: st.SearchStrategy[Any]) -> Any:
            return log.note(what, draw(strategy))

        swarm: list[FaultChoice] = []
        if faults:
            picked = d("swarm", st.sets(st.integers(0, len(faults) - 1), min_size=1, max_size=2))
            swarm = [faults[j] for j in sorted(picked)]
        model = _Model(focus=d("focus", st.sampled_from(FOCUS)))
        model.lead = d("lead", st.sampled_from(("workload", "faults"))) if swarm else "workload"
        n = d("length", st.sampled_from(lengths(max_steps)))
        steps = [_step(d, f"step{i + 1}", model, swarm) for i in range(n)]
        return S.Schedule(tuple(steps), world="claims", bugs=tuple(bugs))

    return build()


def lengths(max_steps: int) -> list[int]:
    """Schedule lengths in drawing order: Hypothesis draws (and shrinks towards) the first
    entries of a list far more often than the rest, and most claims bugs need 3–5 steps —
    two claims, a migration, a pod or claim deletion. Shorter schedules come from the
    step-deletion pass after Hypothesis's shrink."""
    order = [4, 5, 3, 6, 2, 7, 8, *range(9, max_steps + 1)]
    return [n for n in order if n <= max_steps] or [1]


def _pick(d: Any, what: str, options: Sequence[Any]) -> Any:
    """One of ``options`` (no draw when there is only one: nothing to journal or shrink)."""
    return options[0] if len(options) == 1 else d(what, st.sampled_from(list(options)))


def _ops(model: _Model, swarm: Sequence[FaultChoice]) -> list[str]:
    """The ops on offer, weighted by repetition: without claims the world mostly makes
    some; with claims it is mostly driven (migrations, pod deaths, deletions) and faulted;
    with the watch cut, a change and then a compaction are what matter.

    Order matters too: Hypothesis draws the first entries of a list more often than the
    rest (and shrinks towards them), so the op that drives the world furthest comes first
    — making the claims while there are none, migrating once two exist.
    """
    refs = model.refs()
    ops: list[str] = []
    if model.focus != "set":
        missing = len(model.claims) < len(C.CLAIMS)
        make = ["create_claim"] * ((3 if refs else 4) if missing else 0)
    else:
        make = ["scale_set"] * (3 if refs else 4)
    if model.migrated and model.focus == "set":  # the set scales in around a migration
        drive = ["scale_set"] * 3 + ["delete_pod"] * 2 + ["delete_claim"] * 2
        drive += ["migrate"] * 2
    elif model.migrated:  # after a migration: the pods' and claims' deaths come first
        kill = ["delete_claim"] * 3 + ["delete_pod"] * 3
        drive = (kill[::-1] if model.focus == "pods" else kill) + ["migrate"] * 2
    else:
        drive = ["migrate"] * (4 if len(refs) > 1 else 2) + ["delete_pod"] * 3
        drive += ["delete_claim"] * 2
    drive += ["recreate_pod", "pod_phase"]
    if not refs:
        drive = []
    ops = drive + make if len(refs) > 1 else make + drive
    faults = ["fault"] * (2 if swarm else 0)
    # a fault-led schedule starts faulted and then drives the world under the fault
    ops = faults + ops if model.lead == "faults" and not model.faulted else ops + faults
    if model.cut and model.dirty:  # a resumed watch would ask for a compacted revision
        return ["compact"] * 3 + [*ops, "operator_restart", "heal"]
    return [*ops, "compact", "operator_restart", "heal"]


def _migrated_first(model: _Model, refs: list[str]) -> list[str]:
    """Claim references, the ones a migration touched first (stable otherwise)."""
    return sorted(refs, key=lambda r: r not in model.migrated)


def _step(d: Any, where: str, model: _Model, swarm: Sequence[FaultChoice]) -> S.Step:
    refs = model.refs()
    op = d(f"{where}.op", st.sampled_from(_ops(model, swarm)))
    model.dirty = model.dirty or (model.cut and op in WORKLOAD)
    if op == "create_claim":
        name = _pick(d, f"{where}.claim", [c for c in C.CLAIMS if c not in model.claims])
        model.claims.add(name)
        return C.CreateClaim(name)
    if op == "scale_set":
        # most members first, fewer once one migrates (a scale-in around a migration)
        order = range(C.MAX_REPLICAS + 1) if model.migrated else range(C.MAX_REPLICAS, -1, -1)
        replicas = _pick(d, f"{where}.replicas", [r for r in order if r != model.replicas])
        model.replicas = replicas
        return C.ScaleSet(C.SETS[0], replicas)
    if op == "migrate":
        claim = _pick(d, f"{where}.claim", refs)
        to = _pick(d, f"{where}.to", [*(r for r in refs if r != claim), C.IDLE])
        model.migrated.append(claim)
        return C.Migrate(claim, to)
    if op in ("delete_pod", "recreate_pod"):
        pod = _pick(d, f"{where}.pod", _migrated_first(model, refs))
        return C.DeletePod(pod) if op == "delete_pod" else C.RecreatePod(pod)
    if op == "pod_phase":
        pod = _pick(d, f"{where}.pod", refs)
        return C.PodPhase(pod, _pick(d, f"{where}.phase", C.PHASES))
    if op == "delete_claim":
        claim = _pick(d, f"{where}.claim", _migrated_first(model, refs))
        model.claims.discard(claim)  # a deleted set member is replaced: the count stays
        return C.DeleteClaim(claim)
    if op == "fault":
        f = swarm[0]
        if len(swarm) > 1:
            f = swarm[d(f"{where}.fault", st.integers(0, len(swarm) - 1))]
        nth = d(f"{where}.nth", st.sampled_from(list(NTH))) if isinstance(f.step, C.Intake) else 1
        step = f.make(nth)
        model.faulted = True
        if (
            isinstance(step, C.Toxic)
            and step.leg == "watch"
            and step.kind in ("down", "reset_peer")
        ):
            model.cut = True
        return step
    if op == "heal":
        model.cut = model.dirty = False
        return C.Heal()
    if op == "compact":
        model.cut = model.dirty = False  # done: one compaction behind the cut is enough
        return C.Compact()
    return C.OperatorRestart()
