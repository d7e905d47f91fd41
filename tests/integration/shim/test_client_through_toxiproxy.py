"""The gRPC client against the real containerd, directly and through toxiproxy."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from harness.checks import leaks
from harness.providers.containerd import STUB_RUNTIME
from harness.providers.containerd_client import ContainerdClient

pytestmark = pytest.mark.needs("containerd", "toxiproxy", "socat")


def test_pause_completes_although_the_caller_timed_out(
    containerd, toxiproxy, ctd_namespace, reconverge_run
):
    proxy = toxiproxy.create("ctd-grpc", containerd.tcp_relay("grpc"))

    async def main():
        direct = ContainerdClient(str(containerd.address), ctd_namespace)
        proxied = ContainerdClient(f"{proxy.host}:{proxy.port}", ctd_namespace)
        assert (await proxied.version()).startswith(("1.", "v"))
        await proxied.ensure_namespace()
        await proxied.create_container("c1", STUB_RUNTIME)
        await proxied.create_task("c1")
        await proxied.start("c1")
        assert await direct.status("c1") == "RUNNING"
        # Black-hole the replies only (downstream): the request gets through, the task
        # pauses, and the caller sees its deadline fire — seed a's starting point.
        proxy.add_toxic("timeout", stream="downstream", timeout=0)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await proxied.pause("c1", timeout=1.0)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        proxy.clear()
        assert await direct.status("c1") == "PAUSED", "the pause must have happened anyway"
        await direct.resume("c1")
        await direct.kill("c1")
        assert await direct.wait("c1", timeout=10) == 137
        assert await direct.delete_task("c1") == 137
        await direct.delete_container("c1")
        await direct.close()
        await proxied.close()

    asyncio.run(main())
    found = leaks.wait_until_clean(
        reconverge_run.dir, timeout=1.0, namespace=ctd_namespace, state_dir=containerd.state
    )
    assert found == [], [str(f) for f in found]
