"""Every failpoint site of the shim stub and what each action means there: the one table.

Why a table in code: the docs once spelled Pause's reply phase ``after_apply`` while the
interceptor evaluated ``shim.Pause.after``; a suite written from the docs would have
declared a fault that can never fire (INCONCLUSIVE at best). Now the interceptor, the task
service and the publisher build their point names with the functions here,
``docs/shim.md``'s failpoint table is :func:`markdown` verbatim
(``tests/unit/shim/test_sites.py`` compares them and checks every ``shim.*`` name in docs,
suites and tests against :func:`known`), and ``python -m harness.shim.sites`` prints the
table to paste.

The meanings describe the code as it behaves (the suites depend on it), including the
uneven corners: ``panic`` ends the daemon at ``before``/``after``/``locked`` but at
``Delete.between`` only ends the request, and ``close``/``drop``/``duplicate`` do nothing
where there is no reply or connection to act on.
"""

from __future__ import annotations

import sys

# containerd's annotation prefix (one owner: failpoints.sources); the suffix after it names
# the site (see :func:`from_annotation`).
from failpoints.sources import ANNOTATION_PREFIX as ANNOTATION

#: The task API methods (``containerd.task.v2.Task``); each passes the interceptor.
METHODS = (
    "Create", "Start", "State", "Pids", "Kill", "Wait", "Pause", "Resume", "Delete",
    "Connect", "Shutdown", "Stats", "Exec", "ResizePty", "CloseIO", "Update", "Checkpoint",
)  # fmt: skip
#: Interceptor phases: before the method applies, and applied with the reply not yet sent.
PHASES = ("before", "after")
#: Methods with a ``.locked`` site: inside the task lock that ``State`` waits on.
LOCKED = ("Pause", "Resume")
#: Event topics with a ``shim.publish.<topic>`` site, in publishing order.
TOPICS = (
    "tasks.create",
    "tasks.start",
    "tasks.paused",
    "tasks.resumed",
    "tasks.exit",
    "tasks.delete",
)
#: The failpoint actions (``failpoints.grammar.ACTIONS``), in the order the table lists them.
ACTIONS = (
    "error", "delay", "hang", "panic", "close", "drop", "duplicate", "hold", "off", "return",
)  # fmt: skip

NOTHING = "nothing (counted and journaled, otherwise as if disabled)"
_INTERCEPTOR_COMMON = {
    "delay": "waits `ms`, then goes on",
    "hang": "waits until released (control socket `release`) or disabled, then goes on",
    "panic": "the daemon exits at once (status 2), like an unrecovered Go panic",
    "hold": NOTHING,
    "off": NOTHING,
    "return": NOTHING,
}

#: (pattern, where, annotation suffix, {action: meaning}) — the rows of the table.
SITES: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    (
        "shim.<Method>.before",
        "interceptor, before the method applies (the request in transit)",
        "`<Method>` or `<Method>.before`",
        {
            "error": "answers that status (`error(NotFound:gone)` picks the code, else Unknown);"
            " not applied",
            **_INTERCEPTOR_COMMON,
            "close": "aborts the connection; not applied (containerd treats the shim as dead)",
            "drop": "never applied, never answered (the caller's deadline fires)",
            "duplicate": "applied once, the reply sent `n` more times",
        },
    ),
    (
        "shim.<Method>.after",
        "interceptor, applied, the reply not yet sent (the reply in transit)",
        "`<Method>.after`",
        {
            "error": "applied, but answers that status instead of the reply",
            **_INTERCEPTOR_COMMON,
            "panic": "applied, then the daemon exits (status 2) before replying",
            "close": "applied, then the connection is aborted instead of the reply",
            "drop": "applied, the reply swallowed (the caller's deadline fires)",
            "duplicate": "the reply sent `n` more times",
        },
    ),
    (
        "shim.Delete.between",
        "between Delete's phases: the task is marked deleted but still in the map (a second"
        " Delete gets NotFound, Shutdown is a no-op)",
        "`Delete.between`",
        {
            "error": "answers Unknown with `msg` as written (no code prefix); the task stays"
            " marked deleted in the map",
            "delay": "holds the window `ms`, then phase 2 (drop from the map, TaskDelete)",
            "hang": "holds the window until released or disabled",
            "panic": "the request ends unanswered (no phase 2); the daemon lives on",
            "close": NOTHING,
            "drop": NOTHING,
            "duplicate": NOTHING,
            "hold": NOTHING,
            "off": NOTHING,
            "return": NOTHING,
        },
    ),
    (
        "shim.<Pause|Resume>.locked",
        "inside the task lock, before the signal: a slow freeze/thaw a concurrent `State`"
        " waits out",
        "`Pause.locked`, `Resume.locked`",
        {
            "error": "refuses with that status, the lock released; not applied",
            "delay": "holds the lock `ms` (a `State` meanwhile answers after it, with the new"
            " state)",
            "hang": "holds the lock until released or disabled",
            "panic": "the daemon exits at once (status 2)",
            "close": NOTHING,
            "drop": NOTHING,
            "duplicate": NOTHING,
            "hold": NOTHING,
            "off": NOTHING,
            "return": NOTHING,
        },
    ),
    (
        "shim.publish.<topic>",
        "each published event (`shim.publish.tasks.exit`, …), one sender in order",
        "`publish.<topic>`",
        {
            "error": "the event is not sent (`event_dropped`)",
            "delay": "holds the queue `ms` (later events wait too), then sends",
            "hang": "holds the queue until released or disabled, then sends",
            "panic": "nothing: the event is sent",
            "close": "the event is not sent (`event_dropped`)",
            "drop": "the event is not sent (`event_dropped`)",
            "duplicate": "the event sent `n` more times",
            "hold": "`hold(<topic>)` (e.g. `hold(tasks.paused)`): the event is held back, in"
            " order with others held (`event_held`), and sent right after the next"
            " `<topic>` event left (`hold_released by=trigger`); given back earlier, without"
            " its trigger, when the point is released/disabled/re-enabled"
            " (`hold_released by=heal`) or the daemon exits (`by=flush`). Keeps its"
            " original timestamp. One task per shim: a trigger must still follow (exit:"
            " `hold(tasks.delete)`; paused: `hold(tasks.resumed)`/`hold(tasks.exit)`)",
            "off": NOTHING,
            "return": NOTHING,
        },
    ),
)

DELETE_BETWEEN = "shim.Delete.between"


def interceptor(method: str, phase: str) -> str:
    """``shim.<Method>.<before|after>``."""
    return f"shim.{method}.{phase}"


def locked(method: str) -> str:
    """``shim.<Pause|Resume>.locked``."""
    return f"shim.{method}.locked"


def publish(topic: str) -> str:
    """``/tasks/exit`` -> ``shim.publish.tasks.exit``."""
    return "shim.publish." + topic.strip("/").replace("/", ".")


def topic_key(topic: str) -> str:
    """``/tasks/paused``, ``tasks.paused`` -> ``tasks.paused``: how ``hold(<topic>)`` and the
    publisher name a topic (the suffix of its ``shim.publish.`` point)."""
    return publish(topic).removeprefix("shim.publish.")


def hold(topic: str) -> str:
    """The action text holding an event until the next ``topic`` event: ``hold(tasks.paused)``.

    Raises:
        ValueError: ``topic`` is not one the stub publishes (the hold would never end by
            its trigger, only by a heal).
    """
    key = topic_key(topic)
    if key not in TOPICS:
        raise ValueError(f"hold: unknown topic {topic!r}; the stub publishes {', '.join(TOPICS)}")
    return f"hold({key})"


def from_annotation(suffix: str) -> str:
    """The point an annotation ``…failpoint.<suffix>`` enables: ``<Method>`` alone is
    ``.before`` (containerd's convention), anything else is taken as written."""
    return f"shim.{suffix}" if "." in suffix else interceptor(suffix, "before")


def names() -> list[str]:
    """Every concrete point name the stub evaluates."""
    out = [interceptor(m, p) for m in METHODS for p in PHASES]
    out.append(DELETE_BETWEEN)
    out += [locked(m) for m in LOCKED]
    out += [publish(t) for t in TOPICS]
    return out


def known(name: str) -> bool:
    """``name`` is a point the stub evaluates (the scan in the tests asks this)."""
    return name in set(names())


def markdown() -> str:
    """The failpoint table of ``docs/shim.md``: one row per (site, action)."""
    lines = [
        "| site | where | annotation `" + ANNOTATION + "…` | action | what it does there |",
        "|---|---|---|---|---|",
    ]
    for pattern, where, annotation, meaning in SITES:
        for i, action in enumerate(ACTIONS):
            head = (f"`{pattern}`", where, annotation) if i == 0 else ("", "", "")
            lines.append(f"| {' | '.join(head)} | `{action}` | {meaning[action]} |")
    lines.append("")
    lines.append("`<Method>`: " + ", ".join(METHODS) + ". `<topic>`: " + ", ".join(TOPICS) + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
