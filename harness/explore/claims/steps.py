"""The claims world's vocabulary: steps as data (issue #12 §1), JSON round-trip, table rows.

Why symbolic references: a schedule is shrunk and replayed long after it was drawn, and
which pod a claim binds is the operator's choice, not the schedule's. So a step names
things the way a person would: ``c0`` (a standalone claim), ``s0[1]`` (the second live
claim of claim set ``s0``, by name), ``pod-2`` (a pool pod), a claim reference where a
pod is expected (the pod that claim's ``spec.podName`` names when the step runs), and
``idle`` (the first Idle pool pod no claim names). The executor resolves them against
the truth when the step runs; an unresolvable reference makes the step a journaled no-op.

Steps:

- workload: ``create_claim``, ``delete_claim``, ``scale_set`` (creates the set the first
  time), ``migrate`` (the migration agent points a bound claim at another pod and records
  the old one as ``spec.sourcePod`` — what the seed-d cases set up before a scale-in);
- kubelet: ``delete_pod`` (grace-0, gone at once), ``recreate_pod`` (same name, new UID,
  back in the pool as Idle), ``pod_phase`` (Succeeded, Unknown, Running);
- faults: ``toxic`` on the operator → API server legs (``api``: requests; ``watch``: watch
  streams) — ``reset_peer``, ``latency(ms)``, ``silent`` (the connections go quiet without
  a close and new ones fail over to a fresh proxy: a half-open connection, which no heal
  revives) and ``down`` (every connection closed, reconnects refused until the heal);
  ``intake`` (the operator's watch intake failpoint ``claims.watch.<kind>.intake``: drop,
  duplicate, reorder the ``nth`` event from now); ``apiserver_restart`` (graceful);
  ``compact`` (etcd compaction at its current revision); ``operator_restart`` (the
  operator's workers and watches are dropped and a fresh instance starts on the same
  store);
- ``heal``: remove every fault (a silent connection stays dead: it is gone, not faulted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import ReconvergeError
from harness.explore.schedule import Step

#: standalone claims, claim sets, pool pods (the world creates the pods)
CLAIMS = ("c0", "c1")
SETS = ("s0",)
POOL = 5
PODS = tuple(f"pod-{i}" for i in range(POOL))
MAX_REPLICAS = 2
#: a set member reference: ``s0[0]``
MEMBER = re.compile(r"^(?P<set>s\d+)\[(?P<index>\d+)\]$")
IDLE = "idle"
PHASES = ("Succeeded", "Unknown", "Running")
LEGS = ("api", "watch")
#: toxic kinds, whether they take an argument, and the legs they may sit on
TOXICS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "reset_peer": (False, LEGS),
    "latency": (True, LEGS),
    "silent": (False, ("watch",)),
    "down": (False, ("watch",)),
}
INTAKE_KINDS = ("pods", "cnclaims", "cnclaimsets")
#: intake actions and the failpoint action each one is
INTAKE_ACTIONS = {"drop": "drop", "duplicate": "duplicate(1)", "reorder": "return(reorder)"}
#: ``faults.observed`` names of the effects without a failpoint
RESTART_APISERVER = "apiserver restart"
COMPACTION = "etcd compaction"
RESTART_OPERATOR = "operator restart"
ROUTINE_READ_TIMEOUT = "idle watch read timeout"


def claim_ref_ok(ref: str) -> bool:
    """``c0``/``c1``, or ``s0[i]`` with i below the largest claim set."""
    m = MEMBER.match(ref)
    if m:
        return m["set"] in SETS and int(m["index"]) < MAX_REPLICAS
    return ref in CLAIMS


def pod_ref_ok(ref: str) -> bool:
    return ref in PODS or ref == IDLE or claim_ref_ok(ref)


def pod_text(ref: str) -> str:
    """How a pod reference reads in a table row."""
    if ref in PODS:
        return ref
    if ref == IDLE:
        return "an idle pod"
    return f"the pod of {ref}"


@dataclass(frozen=True)
class CreateClaim(Step):
    op: ClassVar[str] = "create_claim"
    claim: str

    def describe(self) -> str:
        return f"create claim {self.claim}"


@dataclass(frozen=True)
class DeleteClaim(Step):
    op: ClassVar[str] = "delete_claim"
    claim: str

    def describe(self) -> str:
        return f"delete claim {self.claim}"


@dataclass(frozen=True)
class ScaleSet(Step):
    op: ClassVar[str] = "scale_set"
    set: str
    replicas: int

    def describe(self) -> str:
        return f"scale claim set {self.set} to {self.replicas}"


@dataclass(frozen=True)
class Migrate(Step):
    """The migration agent: ``spec.podName`` := the target, ``spec.sourcePod`` := the old."""

    op: ClassVar[str] = "migrate"
    claim: str
    to: str

    def describe(self) -> str:
        return f"migrate {self.claim} to {pod_text(self.to)}"


@dataclass(frozen=True)
class DeletePod(Step):
    op: ClassVar[str] = "delete_pod"
    pod: str

    def describe(self) -> str:
        return f"delete {pod_text(self.pod)} (grace 0)"


@dataclass(frozen=True)
class RecreatePod(Step):
    op: ClassVar[str] = "recreate_pod"
    pod: str

    def describe(self) -> str:
        return f"recreate {pod_text(self.pod)} (same name, new UID, Idle)"


@dataclass(frozen=True)
class PodPhase(Step):
    op: ClassVar[str] = "pod_phase"
    pod: str
    phase: str

    def describe(self) -> str:
        return f"{pod_text(self.pod)} turns {self.phase}"


@dataclass(frozen=True)
class Toxic(Step):
    op: ClassVar[str] = "toxic"
    kind: str
    leg: str = "watch"
    arg: int = 0

    def describe(self) -> str:
        arg = f"({self.arg})" if TOXICS.get(self.kind, (False,))[0] else ""
        return f"toxic {self.kind}{arg} on operator → API server ({self.leg})"


@dataclass(frozen=True)
class Intake(Step):
    """A watch-intake failpoint term: the ``nth`` event of ``kind`` from now (logical time)."""

    op: ClassVar[str] = "intake"
    kind: str
    action: str
    nth: int = 1

    @property
    def point(self) -> str:
        return f"claims.watch.{self.kind}.intake"

    @property
    def term(self) -> str:
        return "1*off->" * (self.nth - 1) + f"1*{INTAKE_ACTIONS[self.action]}"

    def describe(self) -> str:
        return f"watch intake: {self.action} {self.kind} event #{self.nth}"


@dataclass(frozen=True)
class ApiserverRestart(Step):
    op: ClassVar[str] = "apiserver_restart"

    def describe(self) -> str:
        return "kube-apiserver graceful restart"


@dataclass(frozen=True)
class Compact(Step):
    op: ClassVar[str] = "compact"

    def describe(self) -> str:
        return "etcd compaction at the current revision"


@dataclass(frozen=True)
class OperatorRestart(Step):
    op: ClassVar[str] = "operator_restart"

    def describe(self) -> str:
        return "operator crash + restart (same store)"


@dataclass(frozen=True)
class Heal(Step):
    op: ClassVar[str] = "heal"

    def describe(self) -> str:
        return "heal: remove every fault"


STEPS: dict[str, type[Step]] = {
    c.op: c
    for c in (
        CreateClaim,
        DeleteClaim,
        ScaleSet,
        Migrate,
        DeletePod,
        RecreatePod,
        PodPhase,
        Toxic,
        Intake,
        ApiserverRestart,
        Compact,
        OperatorRestart,
        Heal,
    )
}


def validate(step: Step, *, source: str = "step") -> None:
    """Reject a step the claims world cannot perform (one clear error, before anything runs)."""

    def bad(text: str) -> ReconvergeError:
        return ReconvergeError(f"{source}: {step.op}: {text}")

    if isinstance(step, CreateClaim) and step.claim not in CLAIMS:
        raise bad(f"unknown claim {step.claim!r}; known: {', '.join(CLAIMS)}")
    if isinstance(step, (DeleteClaim, Migrate)) and not claim_ref_ok(step.claim):
        raise bad(f"unknown claim {step.claim!r}; known: {', '.join(CLAIMS)}, s0[0], s0[1]")
    if isinstance(step, Migrate) and not pod_ref_ok(step.to):
        raise bad(f"unknown pod {step.to!r}; a pool pod, '{IDLE}' or a claim")
    if isinstance(step, (DeletePod, RecreatePod, PodPhase)) and not pod_ref_ok(step.pod):
        raise bad(f"unknown pod {step.pod!r}; a pool pod ({PODS[0]}…), '{IDLE}' or a claim")
    if isinstance(step, PodPhase) and step.phase not in PHASES:
        raise bad(f"unknown phase {step.phase!r}; known: {', '.join(PHASES)}")
    if isinstance(step, ScaleSet):
        if step.set not in SETS:
            raise bad(f"unknown claim set {step.set!r}; known: {', '.join(SETS)}")
        if not isinstance(step.replicas, int) or not 0 <= step.replicas <= MAX_REPLICAS:
            raise bad(f"replicas must be 0..{MAX_REPLICAS}, got {step.replicas!r}")
    if isinstance(step, Toxic):
        spec = TOXICS.get(step.kind)
        if spec is None:
            raise bad(f"unknown toxic {step.kind!r}; known: {', '.join(TOXICS)}")
        if step.leg not in spec[1]:
            raise bad(f"{step.kind} may sit on {', '.join(spec[1])}, not {step.leg!r}")
        if spec[0] and (not isinstance(step.arg, int) or step.arg <= 0):
            raise bad(f"{step.kind} needs a positive argument (ms), got {step.arg!r}")
    if isinstance(step, Intake):
        if step.kind not in INTAKE_KINDS:
            raise bad(f"unknown kind {step.kind!r}; known: {', '.join(INTAKE_KINDS)}")
        if step.action not in INTAKE_ACTIONS:
            raise bad(f"unknown action {step.action!r}; known: {', '.join(INTAKE_ACTIONS)}")
        if not isinstance(step.nth, int) or step.nth < 1:
            raise bad(f"nth must be ≥ 1, got {step.nth!r}")


def failpoints_of(steps: tuple[Step, ...]) -> list[str]:
    """The intake failpoints a schedule arms (what ``faults.fired`` counts)."""
    return sorted({s.point for s in steps if isinstance(s, Intake)})


def toxic_effect(step: Toxic) -> str:
    """The ``faults.observed`` name of a toxic's effect."""
    return f"toxic {step.kind} on {step.leg}"


#: the triggers among the workload steps, as the seed-d cases declare theirs ("pod-p
#: vanished", "replicas 2->1"): journaled when the step took effect on the truth
TRIGGERS: dict[type[Step], str] = {
    DeleteClaim: "claim deleted",
    ScaleSet: "claim set scaled",
    Migrate: "migration",
    DeletePod: "pod deleted",
    RecreatePod: "pod recreated",
    PodPhase: "pod phase flipped",
    ApiserverRestart: RESTART_APISERVER,
    Compact: COMPACTION,
    OperatorRestart: RESTART_OPERATOR,
}


def effects_of(steps: tuple[Step, ...]) -> list[str]:
    """Faults and triggers without a failpoint, each journaled by the executor when seen
    to take effect (a regression replay whose step did nothing is INCONCLUSIVE)."""
    out = {toxic_effect(s) for s in steps if isinstance(s, Toxic)}
    out |= {TRIGGERS[type(s)] for s in steps if type(s) in TRIGGERS}
    if not out and not failpoints_of(steps):
        # nothing faulted: what the run exercises is the routine end of an idle watch
        # stream (the read timeout every schedule's end waits through)
        out.add(ROUTINE_READ_TIMEOUT)
    return sorted(out)
