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
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.checks import leaks
from harness.checks import sandbox as chk
from harness.errors import TooSlow
from harness.journal import merge
from harness.protos import shim_task_pb2
from harness.ttrpc import Client, Code, TTRPCError
from harness.wait import wait_for

pytestmark = [pytest.mark.needs("containerd", "busybox"), pytest.mark.suite]

SUITE = "seed-b-cri"
NAMESPACE = "k8s.io"
GAP_MS = 600
FP_BETWEEN = "io.containerd.runtime.v2.shim.failpoint.Delete.between"
SETTLE_S = 2.0 + GAP_MS / 1000  # the held Delete finishes, then the leak check's bound


@dataclass
class Shim:
    """What the shim of one sandbox looks like after Remove, asked over its own socket."""

    alive: bool
    holds_task: bool | None  # None: not asked (dead shim)

    def __str__(self) -> str:
        if not self.alive:
            return "shim exited"
        return "shim alive, task map " + ("holds the sandbox" if self.holds_task else "empty")


def _shim(run_dir: Path, sid: str) -> Shim:
    """Alive? And does its task map still hold ``sid`` (State answers, or NotFound)?"""
    entry = next((e for e in leaks.registry(run_dir) if e.get("id") == sid), None)
    if entry is None or not leaks.shim_alive(int(entry.get("pid") or 0)):
        return Shim(alive=False, holds_task=None)

    async def ask() -> bool:
        client = await Client.connect(f"unix://{entry['socket']}", timeout=2.0)
        try:
            req = shim_task_pb2.StateRequest(id=sid).SerializeToString()
            await client.call("containerd.task.v2.Task", "State", req, timeout=2.0)
            return True
        except TTRPCError as exc:
            if exc.code == Code.NOT_FOUND:
                return False
            raise
        finally:
            await client.close()

    return Shim(alive=True, holds_task=leaks.run_sync(ask))


@dataclass
class Deletes:
    """The shim's own record of the Delete requests for the sandbox."""

    outcomes: list[str]  # reply outcomes in reply order ("ok", "NOT_FOUND: ...")
    overlaps: int
    shutdown_noops: int

    def __str__(self) -> str:
        return (
            f"{len(self.outcomes)} shim Delete(s) {self.outcomes}, {self.overlaps} overlapping, "
            f"{self.shutdown_noops} Shutdown no-op(s)"
        )


def _deletes(run_dir: Path, sid: str, since: float) -> Deletes:
    shim = [r for r in merge.since(merge.load(run_dir), since) if r.component == "shim"]
    mine = [r for r in shim if r.fields.get("id") == sid]
    return Deletes(
        outcomes=[
            str(r.fields.get("outcome"))
            for r in mine
            if r.event == "reply" and r.fields.get("method") == "Delete"
        ],
        overlaps=sum(1 for r in mine if r.event == "delete_overlap"),
        shutdown_noops=sum(
            1 for r in shim if r.event == "shutdown_noop" and sid in r.fields.get("remaining", [])
        ),
    )


def _every_delete_replied(run_dir: Path, sid: str, since: float) -> Deletes:
    """Wait (bounded) until each Delete the shim received has its reply journaled."""

    def probe() -> tuple[int, Deletes]:
        records = merge.since(merge.load(run_dir), since)
        asked = sum(
            1
            for r in records
            if r.component == "shim"
            and r.event == "request"
            and r.fields.get("method") == "Delete"
            and r.fields.get("id") == sid
        )
        return asked, _deletes(run_dir, sid, since)

    _, deletes = wait_for(
        probe,
        timeout=SETTLE_S,
        what="a journaled reply to every shim Delete",
        accept=lambda v: v[0] >= 1 and len(v[1].outcomes) == v[0],
    )
    return deletes


def _leak_signature(env, sid: str, since: float) -> chk.Outcome:
    """§2.3's end state, checked piece by piece; ``ok=False`` means the leak was seen."""
    run_dir = env.containerd.run.dir
    deletes = _every_delete_replied(run_dir, sid, since)
    shim = _shim(run_dir, sid)
    tasks = leaks.containerd_tasks(env.containerd.address, NAMESPACE)
    bundle = env.containerd.bundle(NAMESPACE, sid)
    pods = env.client.list_pod_sandboxes()
    wanted = {
        "two shim Deletes": len(deletes.outcomes) == 2,
        "the Deletes overlapped": deletes.overlaps >= 1,
        "one Delete got NotFound": sum(o.startswith("NOT_FOUND") for o in deletes.outcomes) == 1,
        "a Shutdown was a no-op while the map held the sandbox": deletes.shutdown_noops >= 1,
        "shim alive": shim.alive,
        "shim's task map empty": shim.holds_task is False,
        "containerd has no task": sid not in tasks,
        "bundle dir gone": not bundle.exists(),
        "kubelet sees no pod": sid not in pods,
    }
    details = [
        str(deletes),
        str(shim),
        f"containerd tasks in {NAMESPACE}: {sorted(tasks) or 'none'}",
        f"bundle {bundle}: {'present' if bundle.exists() else 'gone'}",
        f"ListPodSandbox: {pods or 'empty'}",
        *(f"missing: {k}" for k, v in wanted.items() if not v),
    ]
    if all(wanted.values()):
        symptom = (
            f"leaked shim: alive, empty task map, no task, bundle gone; "
            f"{deletes.overlaps + 1} overlapping Deletes, one NotFound, Shutdown no-op"
        )
        return chk.Outcome(False, symptom, details)
    return chk.Outcome(True, details=details)


def _one_delete(env, sid: str, since: float) -> chk.Outcome:
    """The fixed controller's promise: one Delete per sandbox exit."""
    deletes = _every_delete_replied(env.containerd.run.dir, sid, since)
    if deletes.outcomes == ["ok"] and not deletes.overlaps:
        return chk.Outcome(True, details=[str(deletes)])
    return chk.Outcome(False, f"expected one shim Delete: {deletes}", [str(deletes)])


def _leak(env, sid: str) -> chk.Outcome:
    return chk.leak(
        env.containerd.run.dir,
        address=env.containerd.address,
        state_dir=env.containerd.state,
        namespace=NAMESPACE,
        sids=[sid],
        timeout=SETTLE_S,
    )


@pytest.mark.parametrize(
    ("version", "buggy"),
    [
        pytest.param("v2.1.5", False, id="fixed-v2.1.5"),
        pytest.param("v2.1.4", True, id="buggy-v2.1.4"),
    ],
)
def test_cri_stop_remove_pod_sandbox(version, buggy, cri_containerd, verdict):
    env = cri_containerd(version)
    since = time.monotonic()
    sid = env.client.run_pod_sandbox("seed-b", annotations={FP_BETWEEN: f"delay({GAP_MS})"})
    env.client.stop_pod_sandbox(sid)
    env.client.remove_pod_sandbox(sid)
    leak = chk.note(_leak(env, sid), "leak")
    if buggy:
        # CAUGHT needs the whole signature; a leak of another shape (a task or bundle
        # left behind) is a different bug and must read as MISSED, not as this one
        try:
            outcomes = [chk.note(_leak_signature(env, sid, since), "leak-signature")]
        except TooSlow as exc:
            outcomes = [chk.Outcome(True, details=[str(exc)])]
        if leak.ok:
            outcomes[0].details.insert(0, "leak checker: clean")
    else:
        outcomes = [leak, chk.note(_one_delete(env, sid, since), "one-delete")]
    chk.decide(
        verdict,
        suite=SUITE,
        case=f"CRI Stop/RemovePodSandbox on containerd {version}",
        buggy=buggy,
        fault=f"pod annotation shim.Delete.between=delay({GAP_MS})",
        outcomes=outcomes,
        fixed_text="one shim Delete; shim exited; no task, no bundle",
    )
