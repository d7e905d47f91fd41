"""The task life cycle as a table: which RPC is allowed in which state, and where it leads.

Pure data and two functions, no I/O, so the rules containerd depends on (runc-shim
semantics) can be read and unit-tested in one place.
"""

from __future__ import annotations

import enum

from harness.ttrpc.errors import Code


class State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DELETED = "deleted"  # phase 1 of Delete done; still in the container map until phase 2


# method -> states it is valid in -> resulting state (None: unchanged)
TRANSITIONS: dict[str, dict[State, State | None]] = {
    "Start": {State.CREATED: State.RUNNING},
    "Pause": {State.RUNNING: State.PAUSED},
    "Resume": {State.PAUSED: State.RUNNING},
    "Kill": {State.CREATED: None, State.RUNNING: None, State.PAUSED: None},
    "Delete": {State.CREATED: State.DELETED, State.STOPPED: State.DELETED},
}

# What runc's shim answers when a method meets a state it does not accept.
REFUSALS: dict[str, tuple[Code, str]] = {
    "Start": (Code.FAILED_PRECONDITION, "cannot start a container that is not created"),
    "Pause": (Code.FAILED_PRECONDITION, "cannot pause a container that is not running"),
    "Resume": (Code.FAILED_PRECONDITION, "cannot resume a container that is not paused"),
    "Kill": (Code.NOT_FOUND, "process already finished"),
    "Delete": (Code.FAILED_PRECONDITION, "cannot delete a running process"),
}


def check(method: str, state: State) -> tuple[Code, str] | None:
    """The (code, message) refusing ``method`` in ``state``, or None when allowed."""
    if state is State.DELETED:
        if method == "Delete":
            return Code.NOT_FOUND, "cannot delete a deleted process"
        return Code.NOT_FOUND, "container not created"
    if method in TRANSITIONS and state not in TRANSITIONS[method]:
        return REFUSALS[method]
    return None


def after(method: str, state: State) -> State:
    """The state once ``method`` succeeded in ``state``."""
    nxt = TRANSITIONS.get(method, {}).get(state)
    return state if nxt is None else nxt
