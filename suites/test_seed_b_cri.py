"""Seed b against real containerd CRI: v2.1.4 leaks the shim, v2.1.5 does not (PR #12400).

containerd 2.x from the build cache runs the CRI plugin with the stub shim as the pod
sandbox runtime (``podsandbox`` sandboxer); the harness plays the kubelet over the CRI API
(RunPodSandbox with host networking, so no CNI; a locally built sandbox image). The stub's
two-phase Delete holds the window of §2.3 open (``shim.Delete.between=delay``, set through
a pod annotation the runtime handler passes on), so when StopPodSandbox kills the sandbox:

- v2.1.4 (``0034ae95`` shape: watcher *and* subscriber delete) -> both Deletes land in the
  window; the second gets NotFound, containerd's Shutdown is a no-op while the shim's map
  still holds the sandbox, and containerd forgets the shim -> CAUGHT: leaked shim (alive,
  no task, no bundle) and overlapping shim Deletes;
- v2.1.5 (the backport of ``2042e805b``: the watcher is the only deleter) -> one Delete,
  the shim exits -> CONVERGED.

Deterministic: the window (0.6 s) is far wider than the gap between the two handlers (a
few ms: both react to the same exit), and nothing else races.
"""

from __future__ import annotations

import time

import pytest

from harness.checks import sandbox as chk

pytestmark = [pytest.mark.needs("containerd"), pytest.mark.suite]

SUITE = "seed-b-cri"
GAP_MS = 600
FP_BETWEEN = "io.containerd.runtime.v2.shim.failpoint.Delete.between"


@pytest.mark.parametrize(
    ("version", "buggy"),
    [
        pytest.param("v2.1.5", False, id="fixed-v2.1.5"),
        pytest.param("v2.1.4", True, id="buggy-v2.1.4"),
    ],
)
def test_cri_stop_remove_pod_sandbox(version, buggy, cri_containerd, reconverge_run, verdict):
    env = cri_containerd(version)
    since = time.monotonic()
    sid = env.client.run_pod_sandbox("seed-b", annotations={FP_BETWEEN: f"delay({GAP_MS})"})
    env.client.stop_pod_sandbox(sid)
    env.client.remove_pod_sandbox(sid)
    leak = chk.note(
        chk.leak(
            reconverge_run.dir,
            address=env.containerd.address,
            state_dir=env.containerd.state,
            namespace="k8s.io",
            sids=[sid],
            timeout=2.0,
        ),
        "leak",
    )
    deletes = chk.note(chk.delete_concurrency(reconverge_run.dir, sid, since=since), "delete")
    chk.decide(
        verdict,
        suite=SUITE,
        case=f"CRI Stop/RemovePodSandbox on containerd {version}",
        buggy=buggy,
        fault=f"pod annotation shim.Delete.between=delay({GAP_MS})",
        outcomes=[leak, deletes],
        fixed_text="one shim Delete; shim exited; no task, no bundle",
    )
