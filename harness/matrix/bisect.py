"""Binary search over release tags for the first one whose upstream behaviour changes.

Pure: the caller supplies ``observe(tag) -> list of behaviours`` (one per repeat; None for a
run that observed nothing) and gets back each step and the answer, so the search is tested
without building anything. Why repeats and a hard stop on a split: a race-shaped bug that
leaks 2 runs in 3 is not "good" or "bad", and guessing would send the search down the wrong
half with full confidence; INCONCLUSIVE with the counts is the honest answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import ReconvergeError

Observe = Callable[[str], list["str | None"]]


class Inconclusive(ReconvergeError):
    """A tag's repeats disagreed, observed nothing, or showed a third behaviour."""

    exit_code = 3


@dataclass(frozen=True)
class Step:
    """One tested tag: its runs and what the search concluded from them."""

    number: int
    tag: str
    runs: list[str | None]
    behaviour: str
    left: int  # tags still between the two sides after this step

    def text(self, k: int) -> str:
        counts = ", ".join(f"{b}×{n}" for b, n in Counter(self.runs).items())
        return (
            f"step {self.number}: {self.tag}: {self.behaviour} ({counts}; k={k}); "
            f"{self.left} untested tag(s) left"
        )


@dataclass
class Result:
    """The first tag (ascending) with the newer side's behaviour, and the tag before it."""

    older: str
    newer: str
    before: str
    after: str
    steps: list[Step] = field(default_factory=list)


def agree(tag: str, runs: list[str | None]) -> str:
    """The behaviour every repeat showed, or :class:`Inconclusive` naming the split."""
    counts = Counter(runs)
    if None in counts:
        raise Inconclusive(
            f"INCONCLUSIVE at {tag}: {counts[None]} of {len(runs)} run(s) observed no "
            "upstream behaviour (the case skipped, errored or its fault never fired)",
            fix="look at the run's verdict table; rerun the bisect once the case runs clean",
        )
    if len(counts) > 1:
        split = ", ".join(f"{b} {n}-of-{len(runs)}" for b, n in counts.most_common())
        raise Inconclusive(
            f"INCONCLUSIVE at {tag}: split {split}; the bisect stops here",
            fix="the behaviour is not deterministic on this tag: raise k, or fix the flake",
        )
    return str(runs[0])


def search(
    order: list[str],
    observe: Observe,
    *,
    log: Callable[[str], None] = print,
    k: int = 3,
) -> Result:
    """Bisect ``order`` (ascending tags, both ends included; the ends are observed first).

    Invariant: the lower index shows the oldest tag's behaviour, the upper index the newest
    one's; each step observes the middle tag and moves one side. A third behaviour stops
    the search (neither side's: the range holds more than one change).
    """
    if len(order) < 2:
        raise ReconvergeError(
            "a bisect needs two different tags", fix="give --good and --bad as two served tags"
        )
    steps: list[Step] = []

    def note(tag: str, runs: list[str | None], behaviour: str, left: int) -> None:
        steps.append(Step(len(steps) + 1, tag, runs, behaviour, left))
        log(steps[-1].text(k))

    lo, hi = 0, len(order) - 1
    ends = []
    for tag in (order[lo], order[hi]):
        runs = observe(tag)
        ends.append(agree(tag, runs))
        note(tag, runs, ends[-1], hi - lo - 1)
    first, last = ends
    if first == last:
        raise ReconvergeError(
            f"{order[lo]} and {order[hi]} both show '{first}': nothing to bisect",
            fix="pick a good and a bad tag whose behaviours differ",
        )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        runs = observe(order[mid])
        b = agree(order[mid], runs)
        if b == first:
            lo = mid
        elif b == last:
            hi = mid
        else:
            note(order[mid], runs, b, hi - lo - 1)
            raise Inconclusive(
                f"INCONCLUSIVE at {order[mid]}: '{b}' is neither '{first}' ({order[lo]}) nor "
                f"'{last}' ({order[hi]})",
                fix="the range holds more than one change; bisect each side separately",
            )
        note(order[mid], runs, b, hi - lo - 1)
    return Result(order[lo], order[hi], first, last, steps)
