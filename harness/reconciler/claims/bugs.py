"""The bug switches of the reference claim operator: names, where they live, what they break.

Four switches reproduce matrixone-operator issue #591, fixed by PR #592 (pre-fix
``b8b168403171``, fix commit ``1b8f2364e53c``; §6.4 of ``kubernetes-path.md``). Three more
model naive watch loops the Python client makes easy to write (§5.1–5.2). Each switch is
checked in exactly one place, next to the code it changes, with a comment citing the seed.

A switch name is the pre-fix behaviour; enabling it makes the operator buggy. With no
switch enabled the operator is the fixed one.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ReconvergeError
from harness.reconciler.switch import Switch

# -- seed d: matrixone-operator PR #592 ------------------------------------------------
FINALIZE_SKIP_RETURNS_FALSE = "finalize_skip_returns_false"
SCALEIN_INCLUDES_MIGRATING = "scalein_includes_migrating"
LOST_KEEPS_PODNAME = "lost_keeps_podname"
POD_WATCH_LABEL_ONLY = "pod_watch_label_only"

# -- naive watch loops (§5 of kubernetes-path.md) ----------------------------------------
WATCH_NO_READ_TIMEOUT = "watch_no_read_timeout"
WATCH_END_MEANS_DONE = "watch_end_means_done"
WATCH_NO_RELIST_ON_410 = "watch_no_relist_on_410"
NO_PERIODIC_RESYNC = "no_periodic_resync"


SWITCHES: dict[str, Switch] = {
    s.name: s
    for s in (
        Switch(
            FINALIZE_SKIP_RETURNS_FALSE,
            "finalize.py",
            "PR #592 bug 1 (issue #591; pre-fix b8b168403171, skip added by PR #587 eb9b3563bf0a)",
            "claim keeps its finalizer: Finalize skips the pod held by another claim and "
            "returns (false, nil) forever",
        ),
        Switch(
            SCALEIN_INCLUDES_MIGRATING,
            "scalein.py",
            "PR #592 bug 2 (issue #591; pre-fix b8b168403171, fix 1b8f2364e53c)",
            "migrating claim deleted: scale-in picks a claim whose spec.sourcePod is set",
        ),
        Switch(
            LOST_KEEPS_PODNAME,
            "controller.py (Sync)",
            "PR #592 bug 3 (issue #591; pre-fix b8b168403171, fix 1b8f2364e53c)",
            "Lost claim with a dead podName: spec.podName is never cleared, so it never rebinds",
        ),
        Switch(
            POD_WATCH_LABEL_ONLY,
            "controller.py (pod watch mapping)",
            "PR #592 bug 4 (issue #591; pre-fix b8b168403171, fix 1b8f2364e53c)",
            "Bound claim to a pod that is gone: the pod's delete reaches no claim "
            "once its claimed-by label was removed",
        ),
        Switch(
            WATCH_NO_READ_TIMEOUT,
            "watch.py",
            "kubernetes-path.md §5.1 half-open connections (kubernetes-client/python#1402)",
            "watch blocked forever on a silent connection; later events never arrive",
        ),
        Switch(
            WATCH_END_MEANS_DONE,
            "watch.py",
            "kubernetes-path.md §5.1 'generator ended = done'",
            "watch loop stops when its stream ends; later events never arrive",
        ),
        Switch(
            WATCH_NO_RELIST_ON_410,
            "watch.py",
            "kubernetes-path.md §5.1 410 Gone handling",
            "watch retries a compacted resourceVersion forever (410 Gone) instead of relisting",
        ),
        Switch(
            NO_PERIODIC_RESYNC,
            "watch.py",
            "kubernetes-path.md §5 naive loops (a watch-only cache; §5.2's relist only on 410)",
            "an event the watch lost (dropped, reordered) stays lost: the cache never "
            "catches up until that object changes again",
        ),
    )
}

SEED_D = (
    FINALIZE_SKIP_RETURNS_FALSE,
    SCALEIN_INCLUDES_MIGRATING,
    LOST_KEEPS_PODNAME,
    POD_WATCH_LABEL_ONLY,
)
WATCH_LOOP = (
    WATCH_NO_READ_TIMEOUT,
    WATCH_END_MEANS_DONE,
    WATCH_NO_RELIST_ON_410,
    NO_PERIODIC_RESYNC,
)


class Bugs:
    """The set of enabled switches; unknown names fail at construction, not silently."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        enabled = frozenset(names)
        unknown = sorted(enabled - SWITCHES.keys())
        if unknown:
            raise ReconvergeError(
                f"unknown claim-operator bug switch(es) {', '.join(unknown)}",
                fix="known: " + ", ".join(sorted(SWITCHES)),
            )
        self.enabled = enabled

    def on(self, name: str) -> bool:
        """Whether the pre-fix behaviour ``name`` is enabled (``name`` must be known)."""
        if name not in SWITCHES:
            raise KeyError(name)
        return name in self.enabled

    def __repr__(self) -> str:
        return f"Bugs({sorted(self.enabled)})"

    @property
    def label(self) -> str:
        """``fixed`` or ``buggy-<switch>[+<switch>]`` for ids and the journal."""
        return "fixed" if not self.enabled else "buggy-" + "+".join(sorted(self.enabled))
