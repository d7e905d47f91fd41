"""The bug switches of the reference sandbox reconciler (§4.4 of sandbox-lifecycle-domain.md).

A switch name is the *pre-fix* behaviour: enabling it makes the reconciler buggy; with no
switch enabled it is the fixed one. Each switch is tested in exactly one place, next to the
code it changes, with a comment citing the seed and the upstream commit it models.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ReconvergeError
from harness.reconciler.switch import Switch

# -- seed a: CubeSandbox issue #403, fix PR #404 (pre-fix 7b6ad491, fix 32a30f5c) ------------
PAUSE_RESUME_PRE404 = "cube.pause_resume_pre404"
RESUMED_EVENT_KEEPS_BINDINGS = "cube.resumed_event_keeps_bindings"
DEADGC_PROBES_PAUSING = "cube.deadgc_probes_pausing"
# -- seed b: containerd #12344, fix PR #12400 (pre-fix 0034ae95, fix 2042e805b) --------------
DUAL_EXIT_HANDLERS = "cri.podsandbox_dual_exit_handlers"
WATCHER_EXIT_WITHOUT_ID = "cri.watcher_exit_event_without_id"
# -- seed c: containerd #7496 / #8981 (mitigation #8954, retriable delete #14020) ------------
DELETE_NOT_RETRIABLE = "runtime.delete_not_retriable"
DELETE_TIMEOUT_KILLS_RETRY = "runtime.delete_timeout_kills_retry"


SWITCHES: dict[str, Switch] = {
    s.name: s
    for s in (
        Switch(
            PAUSE_RESUME_PRE404,
            "pause.py, events.py, deadgc.py",
            "seed a: CubeSandbox #403, pre-fix 7b6ad491 (fix 32a30f5c, PR #404)",
            "sandbox stuck PAUSING (or PAUSED) while the shim reports paused (or running)",
        ),
        Switch(
            RESUMED_EVENT_KEEPS_BINDINGS,
            "pause.py (converge_resume)",
            "seed a: first revision of PR #404 (third commit aligned the resumed event)",
            "RUNNING but the runtime snapshot binding ids were not invalidated",
        ),
        Switch(
            DEADGC_PROBES_PAUSING,
            "deadgc.py",
            "seed a: CubeSandbox DeadGC before #108 (86c4c440)",
            "DeadGC probe of a pausing shim timed out and wrote unknown=true",
        ),
        Switch(
            DUAL_EXIT_HANDLERS,
            "exits.py, events.py",
            "seed b: containerd 0034ae95 (double subscription since d0da3d1c; fix 2042e805b)",
            "two concurrent task Deletes for one sandbox; the shim lives on with no bundle",
        ),
        Switch(
            WATCHER_EXIT_WITHOUT_ID,
            "exits.py (exit watcher)",
            "seed b: containerd 0034ae95 waitSandboxExit TaskExit without ID (fix 2042e805b)",
            "backoff replay of the watcher's exit finds no sandbox: task and shim remain",
        ),
        Switch(
            DELETE_NOT_RETRIABLE,
            "delete.py",
            "seed c: containerd v1.6.20 shimTask.delete ignores Shutdown errors (#8981, #14020)",
            "delete succeeded yet the shim still answers Connect with no task or bundle",
        ),
        Switch(
            DELETE_TIMEOUT_KILLS_RETRY,
            "delete.py",
            "seed c: CRI before #8954 (#7496: retry sees NotFound, marks stopped)",
            "sandbox marked exited after NotFound while the shim and its task record live on",
        ),
    )
}


def validate(bugs: Iterable[str]) -> frozenset[str]:
    """The switch set, or one clear error naming the unknown switch and the known ones."""
    chosen = frozenset(bugs)
    unknown = sorted(chosen - SWITCHES.keys())
    if unknown:
        raise ReconvergeError(
            f"unknown sandbox bug switch {', '.join(unknown)}; known: {', '.join(sorted(SWITCHES))}"
        )
    return chosen
