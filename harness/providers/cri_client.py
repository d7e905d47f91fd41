"""A small CRI (runtime.v1) client: what a kubelet asks of containerd for pod sandboxes.

Synchronous on purpose: a suite case drives one pod at a time, step by step, the way the
seed describes (Run, Stop, Remove), and journals each call with its outcome.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from harness import journal
from harness.protos import cri_api_pb2 as cri
from harness.protos import cri_api_pb2_grpc as cri_grpc


class CRIClient:
    """RuntimeService over containerd's unix socket."""

    def __init__(self, address: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix://{address}")
        self.rt = cri_grpc.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, name: str, rpc: Any, req: Message, timeout: float) -> Any:
        t0 = time.monotonic()
        try:
            resp = rpc(req, timeout=timeout)
        except grpc.RpcError as exc:
            journal.emit("cri", name, outcome=exc.code().name, details=exc.details())
            raise
        journal.emit("cri", name, outcome="OK", ms=round((time.monotonic() - t0) * 1000, 1))
        return resp

    def version(self) -> str:
        resp = self._call("Version", self.rt.Version, cri.VersionRequest(version="v1"), 10)
        return f"{resp.runtime_name} {resp.runtime_version}"

    def run_pod_sandbox(
        self, name: str, *, annotations: dict[str, str] | None = None, timeout: float = 60
    ) -> str:
        """A host-network pod (no CNI needed); returns the sandbox id."""
        ns = cri.NamespaceOption(network=cri.NODE, pid=cri.POD, ipc=cri.POD)
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="reconverge"),
            hostname=name,
            annotations=annotations or {},
            linux=cri.LinuxPodSandboxConfig(
                security_context=cri.LinuxSandboxSecurityContext(namespace_options=ns)
            ),
        )
        req = cri.RunPodSandboxRequest(config=config)
        return str(self._call("RunPodSandbox", self.rt.RunPodSandbox, req, timeout).pod_sandbox_id)

    def stop_pod_sandbox(self, sid: str, timeout: float = 60) -> None:
        req = cri.StopPodSandboxRequest(pod_sandbox_id=sid)
        self._call("StopPodSandbox", self.rt.StopPodSandbox, req, timeout)

    def remove_pod_sandbox(self, sid: str, timeout: float = 60) -> None:
        req = cri.RemovePodSandboxRequest(pod_sandbox_id=sid)
        self._call("RemovePodSandbox", self.rt.RemovePodSandbox, req, timeout)

    def list_pod_sandboxes(self) -> dict[str, str]:
        resp = self._call("ListPodSandbox", self.rt.ListPodSandbox, cri.ListPodSandboxRequest(), 10)
        return {p.id: cri.PodSandboxState.Name(p.state) for p in resp.items}
