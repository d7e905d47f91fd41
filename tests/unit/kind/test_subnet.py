"""Per-run node subnets: a /24 of 172.30/16 from the run id, never one a host route covers."""

from __future__ import annotations

import ipaddress

import pytest

from harness.errors import ReconvergeError
from harness.providers import docker


def test_same_run_same_subnet_and_runs_spread() -> None:
    a = docker.pick_subnet("r0000aaaa", [])
    assert a == docker.pick_subnet("r0000aaaa", [])
    assert a.prefixlen == 24 and a.subnet_of(docker.NODE_POOL)
    others = {docker.pick_subnet(f"r{i:08x}", []) for i in range(50)}
    assert len(others) > 40  # hashed, not first-free: concurrent runs rarely collide


def test_skips_subnets_the_host_routes() -> None:
    first = docker.pick_subnet("r12345678", [])
    taken = [first, ipaddress.ip_network("10.0.0.0/8")]
    second = docker.pick_subnet("r12345678", taken)
    assert second != first and not second.overlaps(first)
    # a route covering the whole pool leaves nothing: one line naming the fix
    with pytest.raises(ReconvergeError) as err:
        docker.pick_subnet("r12345678", [ipaddress.ip_network("172.16.0.0/12")])
    assert "janitor --sweep" in err.value.one_line()


def test_own_cgroups_per_hierarchy_mount_name() -> None:
    text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/ad9b\n2:cpu,cpuacct:/x\n0::/u\n"
    own = docker.own_cgroups(text)
    assert own["memory"] == "/process_api/ad9b"
    assert own["systemd"] == "/" and own["pids"] == "/"
    assert own["cpu"] == own["cpuacct"] == "/x"
    assert own["unified"] == "/u"
