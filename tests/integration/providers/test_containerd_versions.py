"""A containerd 2.x from the build cache runs the same stub shim (``version="v2.1.5"``)."""

from __future__ import annotations

import pytest

from harness import binaries
from harness.checks import leaks
from harness.providers.containerd import Containerd

VERSION = "v2.1.5"


def test_stub_lifecycle_on_containerd_2x(reconverge_run, request):
    if binaries.locate("containerd", VERSION) is None:
        why = (
            f"containerd {VERSION} not built (fix: .venv/bin/reconverge build containerd@{VERSION})"
        )
        if request.config.getoption("reconverge_strict"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    c = Containerd(reconverge_run, version=VERSION, name="containerd-2x").start()
    try:
        assert f"containerd {VERSION}" in c.proc.log_tail(200) or VERSION in c.ctr(
            "default", "version"
        )
        ns, cid = "v2x", "on2x"
        c.run_stub_task(ns, cid)
        assert c.task_status(ns, cid) == "RUNNING"
        c.ctr(ns, "task", "pause", cid)
        assert c.task_status(ns, cid) == "PAUSED"
        c.ctr(ns, "task", "resume", cid)
        c.remove_task(ns, cid)
        found = leaks.wait_until_clean(
            reconverge_run.dir, timeout=2.0, state_dir=c.state, namespace=ns
        )
        assert found == [], [str(f) for f in found]
    finally:
        c.stop()


def test_a_run_dir_too_long_for_shim_sockets_is_one_clear_error(reconverge_run):
    import dataclasses
    from pathlib import Path

    from harness.errors import ReconvergeError

    long_run = dataclasses.replace(reconverge_run, dir=Path("/tmp/" + "x" * 90))
    from harness.providers import containerd as mod

    with pytest.raises(ReconvergeError, match="too long for the shims' unix sockets") as err:
        mod._check_socket_room(long_run)
    assert "RECONVERGE_RUN_ROOT" in (err.value.fix or "")
