"""``-info`` end to end: the warm launcher passes it through, and containerd 2.3/2.4 are content.

containerd v2.2+ execs ``<shim> -info`` before creating a task with a runtime it does not
know (every runtime but runc's and runhcs') and, until one answer decodes as a
``RuntimeInfo``, logs an error on *every* Create: "failed to load runtime info" up to v2.3.x,
"failed to query deprecated runtime-allow-mounts annotation" from v2.4.0 (the same query,
kept as a migration path for the ``containerd.io/runtime-allow-mounts`` annotation).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from harness import binaries
from harness.checks import leaks
from harness.journal import merge
from harness.protos import runtime_info_pb2
from harness.providers.containerd import Containerd
from harness.shim import launcher, main, warm

pytestmark = pytest.mark.needs("containerd")

#: what each release logs when ``-info`` fails (v2.3.7: task_manager.go; v2.4.2:
#: task_mounts_deprecated.go)
LINES = ("failed to load runtime info", "failed to query deprecated runtime-allow-mounts")


def test_the_warm_launcher_passes_info_to_the_fork_server(reconverge_run) -> None:
    shim = warm.for_run(reconverge_run)
    if shim is None:
        pytest.skip("the warm path is off (RECONVERGE_SHIM_WARM=0 or no C compiler)")
    done = subprocess.run(
        [str(shim.bin_dir / launcher.BINARY), "-info"],
        input=b"",
        capture_output=True,
        timeout=30,
        env={**os.environ, **shim.env()},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    info = runtime_info_pb2.RuntimeInfo.FromString(done.stdout)
    assert info.name == main.RUNTIME_NAME
    served = [
        r
        for r in merge.load(reconverge_run.dir)
        if r.component == "shim-fork" and r.event == "done" and r.fields.get("code") == 0
    ]
    assert served, "the fork server journaled no answered request: the cold path answered"


def _info_answers(run) -> list[object]:
    """Exit codes of the ``-info`` requests the run's fork server answered (no action word)."""
    return [
        r.fields.get("code")
        for r in merge.load(run.dir)
        if r.component == "shim-fork" and r.event == "done" and r.fields.get("action") == ""
    ]


#: releases outside the default build set (harness.build.components.DEFAULT_SET): checked
#: when a matrix run has built them, skipped otherwise — strict or not; v2.4.2 is in the set
OPTIONAL = frozenset({"v2.3.7"})


@pytest.mark.parametrize("version", ["v2.3.7", "v2.4.2"])
def test_containerd_2x_loads_the_stub_runtime_info(reconverge_run, request, version) -> None:
    if binaries.locate("containerd", version) is None:
        why = f"containerd {version} not built (fix: reconverge build containerd@{version})"
        if version in OPTIONAL or not request.config.getoption("reconverge_strict"):
            pytest.skip(why)
        pytest.fail(why, pytrace=False)
    before = len(_info_answers(reconverge_run))
    c = Containerd(reconverge_run, version=version, name=f"containerd-info-{version}").start()
    try:
        ns = f"info-{version}"
        for cid in ("first", "second"):  # the answer is cached; a failure is logged each time
            c.run_stub_task(ns, cid)
            assert c.task_status(ns, cid) == "RUNNING"
        for cid in ("first", "second"):
            c.remove_task(ns, cid)
        found = leaks.wait_until_clean(
            reconverge_run.dir, timeout=2.0, state_dir=c.state, namespace=ns
        )
        assert found == [], [str(f) for f in found]
        log = c.proc.log_path.read_text(errors="replace")
        bad = [ln for ln in log.splitlines() if any(x in ln for x in LINES) or "-info]" in ln]
        assert bad == [], "\n".join(bad)
        if warm.for_run(reconverge_run) is not None:
            # containerd asked once and cached the answer (a failed answer is asked again)
            asked = _info_answers(reconverge_run)[before:]
            assert asked == [0], asked
    finally:
        c.stop()
