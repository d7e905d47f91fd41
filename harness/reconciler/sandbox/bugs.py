"""The bug switches of the reference sandbox reconciler (§4.4 of sandbox-lifecycle-domain.md).

A switch name is the *pre-fix* behaviour: enabling it makes the reconciler buggy; with no
switch enabled it is the fixed one. Each switch is tested in exactly one place, next to the
code it changes, with a comment citing the seed and the upstream commit it models. A group
alias (:data:`GROUPS`) names a whole pre-fix commit whose fix added several defence lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ReconvergeError
from harness.reconciler.switch import Switch

# -- seed a: CubeSandbox issue #403, fix PR #404 (pre-fix 7b6ad491, fix 32a30f5c) ------------
# PR #404 added four defence lines; each has its own switch so a case can say which one it
# exercises, and the pre-fix commit as a whole is the group alias below.
PAUSE_NO_OWN_DEADLINE = "cube.pause_no_own_deadline"
NO_RECONCILE_AFTER_RPC_ERROR = "cube.no_reconcile_after_rpc_error"
IGNORES_PAUSE_EVENTS = "cube.ignores_pause_events"
DEADGC_SKIPS_STUCK_PAUSING = "cube.deadgc_skips_stuck_pausing"
PAUSE_RESUME_PRE404 = "cube.pause_resume_pre404"  # group: all four lines off (7b6ad491)
RESUMED_EVENT_KEEPS_BINDINGS = "cube.resumed_event_keeps_bindings"
DEADGC_PROBES_PAUSING = "cube.deadgc_probes_pausing"
DEADGC_UNKNOWN_ON_FAILED_PROBE = "cube.deadgc_unknown_on_failed_probe"
RESTART_TRUSTS_PAUSED = "cube.restart_trusts_paused"
APPLIES_STALE_PAUSE_EVENT = "cube.applies_stale_pause_event"
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
            PAUSE_NO_OWN_DEADLINE,
            "pause.py (_deadline)",
            "seed a: CubeSandbox 7b6ad491 task.Pause/Resume on the caller's context "
            "(32a30f5c: own 30 s deadline)",
            "a Pause with no caller deadline runs as long as the shim takes",
        ),
        Switch(
            NO_RECONCILE_AFTER_RPC_ERROR,
            "pause.py (pause/resume except branch)",
            "seed a: CubeSandbox 7b6ad491 returned TaskPauseFailed and nothing else "
            "(32a30f5c: reconcileStatusAfterPause/ResumeError)",
            "after a Pause/Resume RPC error no status query straightens the view",
        ),
        Switch(
            IGNORES_PAUSE_EVENTS,
            "events.py (topics)",
            "seed a: CubeSandbox 7b6ad491 subscribed to /tasks/exit, /tasks/oom, /images/* only "
            "(32a30f5c: /tasks/paused, /tasks/resumed)",
            "/tasks/paused and /tasks/resumed (and the relist feeding them) never reach the view",
        ),
        Switch(
            DEADGC_SKIPS_STUCK_PAUSING,
            "deadgc.py (tick)",
            "seed a: CubeSandbox 7b6ad491 DeadGC skipped IsPaused sandboxes "
            "(32a30f5c: reconcileStuckPausingSandbox past 60 s)",
            "PAUSING forever after a crash: no event replay and DeadGC skips it",
        ),
        Switch(
            RESUMED_EVENT_KEEPS_BINDINGS,
            "events.py (_pause_event)",
            "seed a: first revision of PR #404 (third commit aligned the resumed event)",
            "RUNNING but the runtime snapshot binding ids were not invalidated",
        ),
        Switch(
            DEADGC_PROBES_PAUSING,
            "deadgc.py",
            "seed a: CubeSandbox DeadGC before #108 (86c4c440); carries "
            "cube.deadgc_unknown_on_failed_probe (RecoverContainer)",
            "DeadGC probe of a pausing shim timed out and wrote unknown=true",
        ),
        Switch(
            DEADGC_UNKNOWN_ON_FAILED_PROBE,
            "deadgc.py (probe)",
            "seed a: CubeSandbox RecoverContainer (the reference model's upstream behaviour; "
            "found by reconverge explore, F1)",
            "a DeadGC probe whose status query timed out under latency wrote unknown=true "
            "on a healthy sandbox",
        ),
        Switch(
            RESTART_TRUSTS_PAUSED,
            "events.py (recheck_after_restart)",
            "seed a: CubeSandbox restart reloads records with no event replay and DeadGC skips "
            "PAUSED (the reference model's upstream behaviour; found by reconverge explore, "
            "F4, F8)",
            "a Resume (or a Pause) the shim finished while the reconciler was killed left the "
            "view PAUSED (or RUNNING) for good",
        ),
        Switch(
            APPLIES_STALE_PAUSE_EVENT,
            "events.py (_stale)",
            "seed a: CubeSandbox PR #404's pause/resume handlers apply events in arrival order "
            "(the reference model's upstream behaviour; found by reconverge explore, F5)",
            "a /tasks/paused delivered after /tasks/resumed left the view PAUSED for good "
            "while the shim ran",
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
            "delete.py, exits.py (delete_single_flight)",
            "seed c: CRI before #8954 (#7496: retry sees NotFound, marks stopped)",
            "sandbox marked exited after NotFound while the shim and its task record live on "
            "(and the abandoned Delete overlaps the retry's: F3)",
        ),
    )
}


#: group aliases: one name for a whole pre-fix commit (the seed's buggy variant)
GROUPS: dict[str, frozenset[str]] = {
    PAUSE_RESUME_PRE404: frozenset(
        {
            PAUSE_NO_OWN_DEADLINE,
            NO_RECONCILE_AFTER_RPC_ERROR,
            IGNORES_PAUSE_EVENTS,
            DEADGC_SKIPS_STUCK_PAUSING,
        }
    ),
}


#: a switch that cannot do harm without another: the pre-#108 DeadGC probing a pausing shim
#: hurts only through RecoverContainer's unknown write, which the fixed probe no longer makes
#: (F1), so the pre-#108 model carries it along
CARRIES: dict[str, frozenset[str]] = {
    DEADGC_PROBES_PAUSING: frozenset({DEADGC_UNKNOWN_ON_FAILED_PROBE}),
}


def validate(bugs: Iterable[str]) -> frozenset[str]:
    """The switch set with group aliases expanded (and what a switch carries), or one clear
    error naming the unknown switch and the known ones."""
    chosen: set[str] = set()
    for b in bugs:
        chosen |= GROUPS.get(b, {b})
    for b in list(chosen):
        chosen |= CARRIES.get(b, frozenset())
    unknown = sorted(chosen - SWITCHES.keys())
    if unknown:
        known = ", ".join(sorted([*SWITCHES, *GROUPS]))
        raise ReconvergeError(f"unknown sandbox bug switch {', '.join(unknown)}; known: {known}")
    return frozenset(chosen)
