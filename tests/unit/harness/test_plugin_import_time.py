"""The plugin costs a pytest run almost nothing at start-up (issue #14's acceptance).

Why it matters: the plugin is a ``pytest11`` entry point, so *every* pytest run in an
environment where reconverge is installed imports it and the modules it lists in
``pytest_plugins`` — also runs that never touch a reconverge fixture.

What is measured, precisely: one child interpreter runs

    python -X importtime -c "import pytest; import harness.pytest_plugin as p;
                             [importlib.import_module(m) for m in p.pytest_plugins]"

(the list is the plugin's own, so a module added to it is measured too). ``-X importtime``
prints a tree: one line per module, self and cumulative microseconds, nesting by indent.
The **total** is the sum of the *cumulative* time of every top-level line (no indent)
that comes after the ``pytest`` line — exactly what the plugin adds to a process that has
already started the interpreter and imported pytest (interpreter start-up modules and
pytest's own imports are excluded: every pytest run pays them, with or without us).

Two assertions, because wall-clock import times inflate on a loaded machine:

- load-independent core: none of :data:`HEAVY` is imported at all;
- the number: the best of up to :data:`RUNS` runs is below :data:`BUDGET_MS` (it stops at
  the first run under budget). Each run prints its total and its five largest self times.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

#: Modules (and packages: their submodules too) that must not load at start-up.
HEAVY = (
    "grpc",
    "google.protobuf",
    "kubernetes",
    "docker",
    "yaml",
    "urllib3",
    "sqlite3",
    "harness.reconciler",
    "harness.protos",
    "harness.ttrpc",
    "harness.shim",
    "harness.checks",
    "harness.run",
    "harness.janitor",
)
BUDGET_MS = 40.0
RUNS = 3

CHILD = """
import importlib, json, sys
import pytest
import harness.pytest_plugin as p
for name in p.pytest_plugins:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
print(json.dumps({"plugins": list(p.pytest_plugins), "heavy": heavy}))
"""

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def measure() -> tuple[float, list[tuple[str, float]], dict[str, list[str]]]:
    """One child run: (total ms, [(module, self ms)] largest first, the child's report)."""
    code = f"HEAVY = {HEAVY!r}\n{CHILD}"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    after_pytest = False
    total_us = 0
    selfs: list[tuple[str, float]] = []
    for line in out.stderr.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        self_us, cumulative_us, indent, name = int(m[1]), int(m[2]), len(m[3]), m[4]
        top = indent == 1  # importtime writes one space before a top-level module
        if not after_pytest:
            after_pytest = top and name == "pytest"
            continue
        selfs.append((name, self_us / 1000))
        if top:
            total_us += cumulative_us
    assert after_pytest, f"no top-level pytest line in -X importtime output:\n{out.stderr[-2000:]}"
    selfs.sort(key=lambda x: -x[1])
    return total_us / 1000, selfs, json.loads(out.stdout.strip().splitlines()[-1])


def test_plugin_start_up_imports_nothing_heavy_and_stay_under_budget() -> None:
    totals = []
    for i in range(RUNS):
        total, selfs, report = measure()
        top = ", ".join(f"{name} {ms:.1f}" for name, ms in selfs[:5])
        print(f"run {i + 1}: plugin start-up imports {total:.1f} ms; top 5 self (ms): {top}")
        assert report["heavy"] == [], (
            f"pytest start-up imports heavy modules through the plugin: {report['heavy']} "
            "(import them inside the fixture or function that needs them)"
        )
        assert "harness.pytest_plugin.sandbox" in report["plugins"]
        totals.append(total)
        if total < BUDGET_MS:
            break
    best = min(totals)
    print(f"best of {len(totals)}: {best:.1f} ms (budget {BUDGET_MS:.0f} ms)")
    assert best < BUDGET_MS, f"plugin start-up imports take {best:.1f} ms (best of {totals})"
