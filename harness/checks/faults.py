"""Did the fault fire? Counted from the journal, never assumed.

Why from the journal: a failpoint fires in whichever process evaluates it (a shim daemon,
the reconciler, the test process), and every process journals each trigger
(``failpoint``/``trigger`` records, written by the observer `harness.journal.sink`
installs). A fault whose count is zero makes a verdict INCONCLUSIVE (`harness.verdict`):
a misspelled failpoint name or a toxic on a connection nobody used must never read as a
pass or a catch.

Toxics have no trigger record of their own: a case observes their effect (the reconciler's
call failed with the reset, the event arrived late) and records it with :func:`observed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness import journal
from harness.journal import merge

#: journal event a case writes when it has seen a fault's effect itself
OBSERVED = "fault_observed"


def failpoint_fires(run_dir: Path | str, since: float, name: str) -> int:
    """How often failpoint ``name`` fired (an ``off`` action is not a fire) since ``since``."""
    return sum(
        1
        for r in merge.since(merge.load(run_dir), since)
        if r.component == "failpoint"
        and r.event == "trigger"
        and r.fields.get("name") == name
        and r.fields.get("action") != "off"
    )


def observed(fault: str, **evidence: object) -> None:
    """Journal that the case saw ``fault`` take effect (e.g. "reset_peer: UNKNOWN closed")."""
    journal.emit("check", OBSERVED, fault=fault, **evidence)


def observations(run_dir: Path | str, since: float, fault: str) -> int:
    """How often :func:`observed` was journaled for ``fault`` since ``since``."""
    return sum(
        1
        for r in merge.since(merge.load(run_dir), since)
        if r.component == "check" and r.event == OBSERVED and r.fields.get("fault") == fault
    )


def fired(
    run_dir: Path | str,
    since: float,
    *,
    failpoints: Iterable[str] = (),
    effects: Iterable[str] = (),
) -> dict[str, int]:
    """Fire counts for a case's declared faults: failpoints by name, toxics by observation."""
    out = {name: failpoint_fires(run_dir, since, name) for name in failpoints}
    out.update({name: observations(run_dir, since, name) for name in effects})
    return out
