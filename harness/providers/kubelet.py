"""The harness plays the kubelet: pod status and final deletions, one journaled step at a time.

Why not a real kubelet (or kwok by default): the claim cases need exactly three kubelet
behaviours — a pod becomes Running/Ready, a graceful deletion is finished with
``DELETE gracePeriodSeconds=0``, a pod vanishes or turns Succeeded/Unknown — and each must
happen when the case says, never on a timer, or the operator would see events the case
did not intend (§6.4 determinism notes). Each step is a failpoint site
(``kubelet.<step>``: ``error`` fails the step, ``drop`` skips it, ``delay``/``hang`` stall it)
and a journal record, so the timeline shows who changed a pod.

API facts this relies on (§3.1): status can only be set through ``pods/status`` (status
given at creation is reset to Pending); a pod with ``spec.nodeName`` is only *marked* for
deletion by a DELETE with grace > 0 and stays Terminating until the kubelet's grace-0
DELETE; no scheduler, so ``nodeName`` is set by the creator.
"""

from __future__ import annotations

import time
from typing import Any

import failpoints
from harness import journal
from harness.providers.kube.api import PODS, Kube

NODE = "n1"
POD_IP = "10.0.0.{}"

_POINTS = {
    step: failpoints.point(f"kubelet.{step}")
    for step in ("create", "run", "ready", "phase", "finish_delete", "vanish")
}


class StepSkipped(Exception):
    """A ``drop`` failpoint skipped a kubelet step (the case asked for it)."""


class FakeKubelet:
    """Deterministic pod life cycle for one namespace, through a (truth) client."""

    def __init__(self, kube: Kube, namespace: str, *, node: str = NODE) -> None:
        self.kube = kube
        self.namespace = namespace
        self.node = node
        self._ips = 10

    def _step(self, step: str, pod: str, **fields: Any) -> None:
        action = _POINTS[step].evaluate()
        if action is not None:
            journal.emit("kubelet", f"{step}_{action.kind}", pod=pod, arg=action.arg)
            if action.kind == "drop":
                raise StepSkipped(f"kubelet.{step} dropped for {pod}")
            action.apply_sync(deadline=time.monotonic() + 30)
        journal.emit("kubelet", step, ns=self.namespace, pod=pod, **fields)

    # -- pods ---------------------------------------------------------------------------
    def create_pod(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        scheduled: bool = True,
        ready: bool = True,
        phase: str = "Running",
    ) -> dict[str, Any]:
        """Create a CN pod and bring it to ``phase`` (Ready unless ``ready=False``)."""
        self._step("create", name, labels=labels or {})
        spec: dict[str, Any] = {
            "containers": [{"name": "cn", "image": "none"}],
            "terminationGracePeriodSeconds": 30,
        }
        if scheduled:
            spec["nodeName"] = self.node
        self.kube.create(
            PODS,
            self.namespace,
            {
                "metadata": {
                    "name": name,
                    "labels": dict(labels or {}),
                    "annotations": dict(annotations or {}),
                },
                "spec": spec,
            },
        )
        return self.run(name, ready=ready, phase=phase)

    def run(self, name: str, *, ready: bool = True, phase: str = "Running") -> dict[str, Any]:
        """Report the pod as started: phase, Ready condition, pod IP (``pods/status``)."""
        self._step("run", name, phase=phase, ready=ready)
        self._ips += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "phase": phase,
            "podIP": POD_IP.format(self._ips),
            "hostIP": "10.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}
            ],
        }
        return self.kube.patch(PODS, self.namespace, name, {"status": status}, sub="status")

    def set_ready(self, name: str, ready: bool) -> dict[str, Any]:
        """Flip the Ready condition."""
        self._step("ready", name, ready=ready)
        pod = self.kube.get(PODS, self.namespace, name) or {}
        conds = [
            c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") != "Ready"
        ]
        conds.append({"type": "Ready", "status": "True" if ready else "False"})
        return self.kube.patch(
            PODS, self.namespace, name, {"status": {"conditions": conds}}, sub="status"
        )

    def set_phase(self, name: str, phase: str) -> dict[str, Any]:
        """The pod turns ``Succeeded``, ``Failed`` or ``Unknown`` (containers gone)."""
        self._step("phase", name, phase=phase)
        return self.kube.patch(
            PODS,
            self.namespace,
            name,
            {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "False"}]}},
            sub="status",
        )

    def finish_delete(self, name: str) -> bool:
        """The kubelet's last word on a terminating pod: ``DELETE gracePeriodSeconds=0``.

        Returns False when the pod was already gone.
        """
        self._step("finish_delete", name)
        return self.kube.delete(PODS, self.namespace, name, grace_seconds=0) is not None

    def vanish(self, name: str) -> bool:
        """The pod disappears at once (node lost, force delete): grace-0 DELETE."""
        self._step("vanish", name)
        return self.kube.delete(PODS, self.namespace, name, grace_seconds=0) is not None

    def finish_terminating(self) -> list[str]:
        """Finish every graceful deletion in the namespace (pods with a deletionTimestamp)."""
        pods, _ = self.kube.list(PODS, self.namespace)
        done = []
        for p in pods:
            terminating = p["metadata"].get("deletionTimestamp")
            if terminating and self.finish_delete(p["metadata"]["name"]):
                done.append(p["metadata"]["name"])
        return done
