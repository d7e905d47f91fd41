"""Seed b against real containerd CRI: v2.1.4 leaks the shim, v2.1.5 does not (PR #12400).

containerd 2.x from the build cache runs the CRI plugin with the stub shim as the pod
sandbox runtime (``podsandbox`` sandboxer); the harness plays the kubelet over the CRI API
(RunPodSandbox with host networking, so no CNI; a locally built sandbox image). The stub's
two-phase Delete holds the window of §2.3 open (``shim.Delete.between=delay``, set through
a pod annotation the runtime handler passes on), so when StopPodSandbox kills the sandbox:

- v2.1.4 (``0034ae95`` shape: exit watcher *and* ``/tasks/exit`` subscriber delete) -> two
  Deletes reach the shim; whichever arrives first is held between its phases, the second
  gets NotFound, containerd's Shutdown on that path is a no-op while the shim's map still
  holds the sandbox, containerd removes the bundle and forgets the task, the first Delete
  then empties the map and nobody asks the shim to exit -> CAUGHT only when the whole
  §2.3 signature holds: two overlapping Deletes, one NotFound, a Shutdown no-op, and
  afterwards the shim alive with an empty task map, no containerd task, no bundle (the
  kubelet's view is clean: Stop and Remove both succeeded);
- v2.1.5 (backport of ``2042e805b``: the watcher is the only deleter) -> exactly one
  Delete, the shim exits -> CONVERGED.

Why the failpoint and not the bare race: without the window the stub's Delete takes
~0.1 ms, so the second handler's Delete usually arrives after the first finished (NotFound,
then a Shutdown that does exit the shim) or not at all (its task lookup already misses) —
two Deletes, no leak. The window only widens what the real runc shim has (its map entry
goes after ``container.Delete`` returns); it creates no second Delete: v2.1.5 under the
same window sends one.

Deterministic: both handlers react to the same exit within a few ms, the window is 0.6 s,
and the verdict waits on observations with deadlines (no sleeps). Which handler's Delete
is held first differs between runs; the leak does not depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from failpoints.sources import ANNOTATION_PREFIX
from harness.checks import faults
from harness.checks import sandbox as chk
from harness.matrix.upstream import Upstream
from harness.verdict import Finding

pytestmark = [pytest.mark.needs("containerd", "busybox"), pytest.mark.suite]

SUITE = "seed-b-cri"
NAMESPACE = "k8s.io"
GAP_MS = 600
FP_BETWEEN = ANNOTATION_PREFIX + "Delete.between"
SETTLE_S = 2.0 + GAP_MS / 1000  # the held Delete finishes, then the leak check's bound


def _leak(env, sid: str) -> Finding:
    """Shim, containerd task and bundle after Remove, with the facts the signature reads."""
    return chk.note(
        chk.leak(
            env.containerd.run.dir,
            address=env.containerd.address,
            state_dir=env.containerd.state,
            namespace=NAMESPACE,
            sids=[sid],
            timeout=SETTLE_S,
        )
    )


def _kubelet_view(env, sid: str) -> Finding:
    """What the kubelet sees: ListPodSandbox no longer lists the sandbox."""
    try:
        pods = env.client.list_pod_sandboxes()
    except chk.PROBE_ERRORS as exc:
        return chk.unobservable("kubelet view", exc)
    return chk.note(
        chk.SandboxFinding(
            "kubelet view",
            ok=sid not in pods,
            symptom=f"ListPodSandbox: {pods or 'empty'}",
            facts={"listed": sid in pods},
        )
    )


def _symptom(findings: Mapping[str, Finding]) -> str | None:
    """§2.3's end state, every piece of it; a leak of another shape is another bug."""
    d, lk = chk.by_check(findings, "delete"), chk.by_check(findings, "leak")
    kv = chk.by_check(findings, "kubelet view")
    parts = {
        "two shim Deletes": d.get("requests") == 2,
        "the Deletes overlapped": d.get("overlaps", 0) >= 1,
        "one Delete got NotFound": d.get("not_found") == 1,
        "a Shutdown was a no-op while the map held the sandbox": d.get("shutdown_noops", 0) >= 1,
        "shim alive": bool(lk.get("shim_alive")),
        "shim's task map empty": lk.get("shim_status") == chk.NO_TASK,
        "containerd has no task": lk.get("containerd_task") == "",
        "bundle dir gone": lk.get("bundle") is False,
        "kubelet sees no pod": kv.get("listed") is False,
    }
    return chk.signature(
        parts,
        f"leaked shim: alive, empty task map, no task, bundle gone; "
        f"{d.get('overlaps', 0) + 1} overlapping Deletes, one NotFound, Shutdown no-op",
    )


#: observed upstream behaviour per release (harness/matrix; docs/matrix.md)
UPSTREAM = Upstream(
    reference="containerd #12344, fixed by PR #12400 (v2.1.5 backport of 2042e805b)",
    leaks=("v2.1.4",),
    clean=("v2.1.5", "v2.4.2"),
    since="v2.0.0",  # CRI with the stub handler: config version 3
    default=("v2.1.5", "v2.1.4"),
)


@pytest.mark.containerd_matrix(UPSTREAM)
def test_cri_stop_remove_pod_sandbox(containerd_release, cri_containerd, verdict):
    version, buggy = containerd_release.label, containerd_release.buggy
    env = cri_containerd(version)
    running = chk.containerd_version(env.containerd.address)
    assert running.lstrip("v").startswith(version.lstrip("v")), (
        f"the case needs containerd {version}; the running binary reports {running}"
    )
    since = time.monotonic()
    sid = env.client.run_pod_sandbox("seed-b", annotations={FP_BETWEEN: f"delay({GAP_MS})"})
    env.client.stop_pod_sandbox(sid)
    env.client.remove_pod_sandbox(sid)
    run_dir = env.containerd.run.dir
    findings = [
        chk.note(
            chk.delete_concurrency(
                run_dir, sid, since=since, exactly_one=not buggy, timeout=SETTLE_S
            )
        ),
        _leak(env, sid),
        _kubelet_view(env, sid),
    ]
    verdict.judge(
        suite=SUITE,
        case=f"CRI Stop/RemovePodSandbox on containerd {running}",
        variant="buggy" if buggy else "fixed",
        fault=f"pod annotation shim.Delete.between=delay({GAP_MS})",
        findings=findings,
        fired=faults.fired(run_dir, verdict.since, failpoints=["shim.Delete.between"]),
        symptom=_symptom,
        fixed_text="; ".join(f.symptom for f in findings if f.ok),
        versions={"containerd": running},
    )
