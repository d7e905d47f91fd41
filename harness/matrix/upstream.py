"""What a real containerd release does on a case: declared next to the case, observed by it.

Why a declaration per version: on a real release the "expected" verdict is not ours to
choose — it is what upstream does (v2.1.4 leaks the shim, v2.1.5 does not). A suite
declares what it observed per release with the upstream reference; a matrix run compares
each cell with that declaration, and a difference *between two releases* is a behaviour
change (the thing a matrix is for), never a failure of the harness. A release that differs
from its own declaration is a failure: either upstream's artefact or our harness changed.

Observed behaviour comes from the verdict row of a *probe* variant: the variant whose
verdict is about containerd (seed b CRI: both; seed c: the reconciler that trusts
containerd, ``buggy``). ``CAUGHT`` -> leaks; a buggy probe ``MISSED`` with every checker
passing, or a fixed probe ``CONVERGED`` -> does not leak; anything else (INCONCLUSIVE,
ERROR, "failed differently") is no observation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.matrix import tags

LEAKS = "leaks"
CLEAN = "does not leak"
BEHAVIOURS = (LEAKS, CLEAN)

#: The symptom :func:`harness.verdict.decide` gives a buggy variant whose checkers all pass.
NOTHING_FAILED = "every checker passed"


def same_version(a: str, b: str) -> bool:
    """``1.6.20`` == ``v1.6.20``; a build label never matches a different patch."""
    return a.lstrip("v") == b.lstrip("v")


@dataclass(frozen=True)
class Upstream:
    """A case's observed upstream behaviour per containerd release, with the reference.

    ``leaks`` / ``clean``: releases (``1.6.20``, ``v2.1.4``) seen leaking / not leaking.
    ``since``: the oldest release the case can run on at all (CRI config v3: ``v2.0.0``);
    older releases are "n/a" cells, not runs. ``probes``: which variants' verdicts are about
    containerd. ``default``: releases run without ``--reconverge-containerd`` (empty: the
    session's containerd, unparametrised, exactly as before the matrix existed).
    """

    reference: str
    leaks: tuple[str, ...] = ()
    clean: tuple[str, ...] = ()
    since: str | None = None
    probes: tuple[str, ...] = ("buggy", "fixed")
    default: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        both = [v for v in self.leaks if any(same_version(v, c) for c in self.clean)]
        if both:
            raise ValueError(f"declared both leaking and clean: {', '.join(both)}")

    def expect(self, version: str) -> str | None:
        """The declared behaviour of ``version``, or None when nobody observed it yet."""
        if any(same_version(version, v) for v in self.leaks):
            return LEAKS
        if any(same_version(version, v) for v in self.clean):
            return CLEAN
        return None

    def applies(self, version: str) -> bool:
        """Can the case run on ``version`` at all (``since``)?"""
        if self.since is None:
            return True
        return tags.parse(version).key >= tags.parse(self.since).key

    def variant(self, version: str) -> str:
        """Which variant a version-driven case runs: declared clean -> fixed, else buggy.

        Why buggy for an undeclared release: the buggy variant's symptom predicate is the
        whole signature, so its verdict tells "leaks" (CAUGHT) from "does not leak"
        (every checker passed) — a fixed variant could only say "something diverged".
        """
        return "fixed" if self.expect(version) == CLEAN else "buggy"

    def param_id(self, version: str) -> str:
        """``fixed-v2.1.5`` / ``buggy-v2.1.4`` / ``probe-v2.4.2`` (undeclared)."""
        want = self.expect(version)
        kind = "probe" if want is None else self.variant(version)
        return f"{kind}-{version}"


def from_marker(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Upstream:
    """``@pytest.mark.containerd_matrix(Upstream(...))`` or with the fields as keywords."""
    if args and isinstance(args[0], Upstream):
        return args[0]
    if "upstream" in kwargs and isinstance(kwargs["upstream"], Upstream):
        return kwargs["upstream"]
    return Upstream(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


def observed(row: Mapping[str, Any], probes: Iterable[str] = ("buggy", "fixed")) -> str | None:
    """The upstream behaviour a verdict row shows, or None (not a probe, or no observation)."""
    variant, outcome = row.get("variant"), row.get("outcome")
    if variant not in tuple(probes):
        return None
    if outcome == "CAUGHT":
        return LEAKS
    if variant == "buggy" and outcome == "MISSED" and row.get("symptom") == NOTHING_FAILED:
        return CLEAN
    if variant == "fixed" and outcome == "CONVERGED":
        return CLEAN
    return None


@dataclass(frozen=True)
class Judgement:
    """A probe cell against its declaration: ``as declared``, ``undeclared`` or ``differs``."""

    behaviour: str | None
    declared: str | None

    @property
    def relation(self) -> str:
        if self.behaviour is None:
            return "no observation"
        if self.declared is None:
            return "undeclared"
        return "as declared" if self.behaviour == self.declared else "differs"

    @property
    def acceptable(self) -> bool:
        """Does the case pass? An observation that is undeclared or as declared."""
        return self.relation in ("as declared", "undeclared")

    def text(self) -> str:
        if self.behaviour is None:
            return ""
        if self.relation == "differs":
            return f"{self.behaviour} (DIFFERS: declared {self.declared})"
        return f"{self.behaviour} ({self.relation})"
