"""toxiproxy as a container: built locally from the same static binary, run by testcontainers.

There is no registry, so the image is ``FROM scratch`` plus the cached toxiproxy-server
binary, built by the engine itself. The container uses the host network and binds the
API to 127.0.0.1 on a port we choose, so proxies listen on the host's loopback exactly as
with the process backend. testcontainers' Ryuk reaper is disabled (it would need a pulled
image); the janitor owns the container instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil

from harness import binaries, journal
from harness.errors import ProviderFailed
from harness.providers.docker import engine
from harness.providers.process import free_port, tcp_open
from harness.providers.toxiproxy import ToxiproxyServer, _version_ok
from harness.run import Run
from harness.wait import wait_for

IMAGE_REPO = "reconverge/toxiproxy"

DOCKERFILE = (
    'FROM scratch\nCOPY toxiproxy-server /toxiproxy-server\nENTRYPOINT ["/toxiproxy-server"]\n'
)


def _image_tag(binary_sha: str) -> str:
    return f"{IMAGE_REPO}:{binary_sha[:12]}"


class ContainerToxiproxy(ToxiproxyServer):
    """toxiproxy-server in a locally built container on the host network."""

    backend = "container"

    def __init__(self, run: Run, *, timeout: float = 30.0) -> None:
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.core.container import DockerContainer

        binary = binaries.require("toxiproxy")
        self.engine = engine(run)
        client = self.engine.client()
        digest = hashlib.sha256(binary.read_bytes()).hexdigest()
        tag = _image_tag(digest)
        if not client.images.list(name=tag):
            ctx = run.path("toxiproxy-image", mkdir=True)
            shutil.copy2(binary, ctx / "toxiproxy-server")
            (ctx / "Dockerfile").write_text(DOCKERFILE)
            client.images.build(path=str(ctx), tag=tag, rm=True)
            journal.emit("docker", "image_built", tag=tag)
        port = free_port()
        # testcontainers builds its client with docker.from_env(): point DOCKER_HOST at our
        # engine just for that construction.
        saved = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = self.engine.host
        try:
            container = (
                DockerContainer(tag)
                .with_kwargs(network_mode="host", labels={"reconverge.run": run.id})
                .with_command(f"-host 127.0.0.1 -port {port} -seed {run.seed}")
            )
        finally:
            if saved is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = saved
        container.start()
        wrapped = container.get_wrapped_container()
        run.janitor.container(wrapped.id, docker_host=self.engine.host)
        wrapped.reload()
        pid = int(wrapped.attrs.get("State", {}).get("Pid") or 0)
        if pid:
            run.janitor.process(pid, name="toxiproxy-container-init", group=False)
        self.container = container
        try:
            wait_for(
                lambda: tcp_open("127.0.0.1", port) and _version_ok("127.0.0.1", port),
                timeout=timeout,
                what="toxiproxy container API answering",
            )
        except Exception as exc:
            logs = wrapped.logs(tail=15).decode(errors="replace")
            raise ProviderFailed(f"toxiproxy container did not start: {exc}\n{logs}") from None
        super().__init__(run, "127.0.0.1", port)
        journal.emit("toxiproxy", "container_started", id=wrapped.id[:12], image=tag, port=port)

    def stop(self) -> None:
        try:
            self.container.stop()
        finally:
            self.engine.stop()
