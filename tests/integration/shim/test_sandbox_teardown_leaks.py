"""``sandbox_env`` checks for leaks at teardown, before it reaps, on the real containerd 1.6.20.

A child pytest runs three cases on ``sandbox_env``: a ``fixed`` and a ``buggy-…`` variant
that each leak a shim the way seed c does (``Shutdown`` answers an error, containerd 1.6.20
ignores it and forgets the task: the daemon lives on) and record the verdict a case blind
to leaks would (CONVERGED / CAUGHT), and a ``fixed`` one that leaves a live sandbox (a
container containerd still lists is the case's, not a leak). Only the fixed leak fails —
in teardown, naming the shim, its pid, the container and the test, and its verdict row
becomes DIVERGED — the buggy one's leak is journaled as deliberate, and the child run ends
with nothing left.
"""

from __future__ import annotations

import re

import pytest

from harness.build import cache

pytestmark = pytest.mark.needs("containerd", "toxiproxy")

#: The build cache as this process sees it: pytester points HOME elsewhere for the child.
CACHE = cache.root()

CHILD = """
import asyncio
import json
from pathlib import Path

import pytest

from harness.providers.containerd import STUB_RUNTIME
from harness.providers.containerd_client import ContainerdClient
from failpoints.sources import ANNOTATION_PREFIX

FP = ANNOTATION_PREFIX


def _drive(env, cid, *, remove):
    async def main():
        c = ContainerdClient(str(env.containerd.address), env.namespace)
        await c.ensure_namespace()
        annotations = {FP + "Shutdown": "error(please retry)"} if remove else {}
        await c.create_container(cid, STUB_RUNTIME, annotations=annotations)
        await c.create_task(cid)
        await c.start(cid)
        if remove:
            await c.kill(cid)
            await c.wait(cid, timeout=10)
            await c.delete_task(cid)
            await c.delete_container(cid)
        await c.close()

    asyncio.run(main())
    entry = env.shim_entry(cid)
    print(f"SHIM {cid} pid={entry.get('pid')}")


@pytest.mark.suite
@pytest.mark.parametrize(
    "buggy", [pytest.param(False, id="fixed"), pytest.param(True, id="buggy-leaks-on-purpose")]
)
def test_leaks_a_shim(buggy, sandbox_env, verdict):
    _drive(sandbox_env, "leaky", remove=True)
    # what a case that did not look for leaks would conclude
    verdict.record(
        suite="teardown", case="leaks a shim", variant="buggy" if buggy else "fixed",
        fault="Shutdown error", outcome="CAUGHT" if buggy else "CONVERGED", fired={"x": 1},
    )


@pytest.mark.parametrize("buggy", [pytest.param(False, id="fixed")])
def test_leaves_a_live_sandbox(buggy, sandbox_env):
    _drive(sandbox_env, "alive", remove=False)


def test_zz_what_teardown_journaled(reconverge_run):
    from harness.journal import merge

    seen = [
        (r.event, r.fields.get("kind"), r.fields.get("id"), r.fields.get("test"))
        for r in merge.load(reconverge_run.dir)
        if r.component == "teardown" and r.event in ("leak", "deliberate_leak")
    ]
    print("TEARDOWN " + json.dumps(seen))
"""


def test_a_fixed_case_that_leaks_fails_at_teardown(pytester, short_run_root, monkeypatch):
    pytester.makepyfile(test_child=CHILD)
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(short_run_root))
    monkeypatch.setenv("RECONVERGE_CACHE", str(CACHE))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-s", timeout=240)
    out = result.stdout.str()
    result.assert_outcomes(passed=4, errors=1)
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR ")]
    assert errors == [ln for ln in errors if "test_leaks_a_shim[fixed]" in ln], errors
    assert errors, out
    assert "fixed variant leaked (found at teardown, before the reap)" in out, out
    pid = re.search(r"SHIM leaky pid=(\d+)", out)
    assert pid, out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("shim-process of "))
    assert "/leaky" in line and f"pid {pid.group(1)}" in line, line
    assert "test_leaks_a_shim[fixed]" in line and "answers Connect" in line, line
    assert "ms after the shim's Delete reply" in line, line  # its detection latency
    journaled = re.search(r"TEARDOWN (\[.*\])", out)
    assert journaled, out
    import json

    events = {(e, k, cid, t.rsplit("::", 1)[-1]) for e, k, cid, t in json.loads(journaled.group(1))}
    assert ("leak", "shim-process", "leaky", "test_leaks_a_shim[fixed]") in events, events
    assert (
        "deliberate_leak",
        "shim-process",
        "leaky",
        "test_leaks_a_shim[buggy-leaks-on-purpose]",
    ) in events, events
    assert not any(cid == "alive" for _, _, cid, _ in events), events
    # the verdict table: the fixed row is not CONVERGED any more, the buggy one stays CAUGHT
    rows = [ln for ln in out.splitlines() if ln.startswith("teardown ")]
    fixed = next(ln for ln in rows if " fixed " in ln)
    assert " DIVERGED " in fixed and "leaked at teardown: shim-process of " in fixed, rows
    assert " CAUGHT " in next(ln for ln in rows if " buggy " in ln), rows
    assert not short_run_root.exists() or not any(short_run_root.iterdir()), "run dir left"
