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
)
#: Only when named with ``--faults``: a dropped or reordered event breaks the watch
#: contract itself (an API server never does either), and the operator — like upstream,
#: without a periodic resync — only heals it on a relist, so every schedule with one
#: would fail with every fix on too.
OPT_IN: tuple[FaultChoice, ...] = (
    FaultChoice("toxic.latency.watch", C.Toxic("latency", "watch", 300), toxic=True),
    FaultChoice("intake.pods.drop", C.Intake("pods", "drop")),
    FaultChoice("intake.cnclaims.drop", C.Intake("cnclaims", "drop")),
    FaultChoice("intake.pods.reorder", C.Intake("pods", "reorder")),
    FaultChoice("intake.cnclaims.reorder", C.Intake("cnclaims", "reorder")),
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

    claims: set[str] = field(default_factory=set)
    replicas: int = 0

    def refs(self) -> list[str]:
        """Live claim references, standalone first, in a stable order."""
        members = [f"{C.SETS[0]}[{i}]" for i in range(self.replicas)]
        return [c for c in C.CLAIMS if c in self.claims] + members

    def forget(self, ref: str) -> None:
        if ref in self.claims:
            self.claims.discard(ref)
        # a deleted set member is replaced by the set: the count stays


def schedules(
    *,
    max_steps: int = 8,
    faults: Sequence[FaultChoice] = FAULT_MENU,
    bugs: Sequence[str] = (),
    log: DrawLog | None = None,
) -> st.SearchStrategy[S.Schedule]:
    """Schedules of 1..``max_steps`` claims-world steps."""
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
        n = d("length", st.integers(1, max_steps))
        model = _Model()
        steps = [_step(d, f"step{i + 1}", model, swarm) for i in range(n)]
        return S.Schedule(tuple(steps), world="claims", bugs=tuple(bugs))

    return build()


def _pick(d: Any, what: str, options: Sequence[Any]) -> Any:
    """One of ``options`` (no draw when there is only one: nothing to journal or shrink)."""
    return options[0] if len(options) == 1 else d(what, st.sampled_from(list(options)))


def _step(d: Any, where: str, model: _Model, swarm: Sequence[FaultChoice]) -> S.Step:
    refs = model.refs()
    missing = [c for c in C.CLAIMS if c not in model.claims]
    # weights by repetition: without claims the world mostly makes some; with claims it is
    # mostly driven (migrations, pod deaths, deletions) and faulted
    ops: list[str] = []
    ops += ["create_claim"] * (3 if missing else 0)
    ops += ["scale_set"] * 2
    if refs:
        ops += ["migrate"] * 3 + ["delete_pod"] * 2 + ["delete_claim"] * 2
        ops += ["recreate_pod", "pod_phase"]
    ops += ["fault"] * (3 if swarm else 0)
    ops += ["compact", "operator_restart", "heal"]
    op = d(f"{where}.op", st.sampled_from(ops))
    if op == "create_claim":
        name = _pick(d, f"{where}.claim", missing)
        model.claims.add(name)
        return C.CreateClaim(name)
    if op == "scale_set":
        replicas = d(f"{where}.replicas", st.integers(0, C.MAX_REPLICAS))
        model.replicas = replicas
        return C.ScaleSet(C.SETS[0], replicas)
    if op == "migrate":
        claim = _pick(d, f"{where}.claim", refs)
        to = _pick(d, f"{where}.to", [C.IDLE, *(r for r in refs if r != claim)])
        return C.Migrate(claim, to)
    if op in ("delete_pod", "recreate_pod"):
        pod = _pick(d, f"{where}.pod", refs)
        return C.DeletePod(pod) if op == "delete_pod" else C.RecreatePod(pod)
    if op == "pod_phase":
        pod = _pick(d, f"{where}.pod", refs)
        return C.PodPhase(pod, _pick(d, f"{where}.phase", C.PHASES))
    if op == "delete_claim":
        claim = _pick(d, f"{where}.claim", refs)
        model.forget(claim)
        return C.DeleteClaim(claim)
    if op == "fault":
        f = swarm[0]
        if len(swarm) > 1:
            f = swarm[d(f"{where}.fault", st.integers(0, len(swarm) - 1))]
        nth = d(f"{where}.nth", st.sampled_from(list(NTH))) if isinstance(f.step, C.Intake) else 1
        return f.make(nth)
    simple: dict[str, S.Step] = {
        "compact": C.Compact(),
        "operator_restart": C.OperatorRestart(),
        "heal": C.Heal(),
    }
    return simple[op]
