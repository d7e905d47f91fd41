"""Benchmark: a task life cycle on the stub shim vs on runc, through one containerd.

Run as ``.venv/bin/python ci/bench.d/containerd.py [rounds]``. One private containerd 1.6.20;
over its gRPC API (no ``ctr`` process per step, so the figure is containerd + shim, not
client start-up) each life cycle is: container create, task create (the shim starts),
start, kill SIGKILL + wait for the exit, task delete, container delete. ``io.containerd.
runc.v2`` runs ``/bin/sleep`` from a busybox rootfs under a full OCI spec written here;
the stub runs the same spec. The two alternate (and swap who goes first every round) so
both see the same machine. Prints one line: both medians, the ratio stub/runc (target
<= 1.0) and the bring-up of containerd + toxiproxy (target <= 3 s). When the stub is the
slower one, a second line (stderr) splits both life cycles into their steps, to show
where the time goes. Exit 0 when measured (targets are reported, not enforced), 2 when a
component is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from a bare checkout

from google.protobuf import any_pb2  # after the path set-up above

from harness import binaries, janitor
from harness import run as run_mod
from harness.errors import ReconvergeError
from harness.protos import containers_pb2, tasks_pb2
from harness.providers import toxiproxy
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import SPEC_TYPE_URL, ContainerdClient
from harness.run import Run

ROUNDS = 10
RATIO_TARGET = 1.0
BRINGUP_TARGET_S = 3.0
RUNC_RUNTIME = "io.containerd.runc.v2"
NAMESPACE = "bench"
STEPS = ("container", "create", "start", "kill", "delete")
# containerd's default set for a non-privileged container (oci/spec.go)
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip


MASKED = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]  # fmt: skip
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _mount(destination: str, kind: str, source: str, *options: str) -> dict:
    return {"destination": destination, "type": kind, "source": source, "options": list(options)}


MOUNTS = [
    _mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
    _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
    _mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
           "mode=0620", "gid=5"),
    _mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
    _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
    _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
    _mount("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
]  # fmt: skip


def missing() -> str | None:
    """The first component this benchmark cannot find, with how to get it."""
    for component in ("containerd", "runc", "busybox", "toxiproxy"):
        if binaries.locate(component) is None:
            return component
    if shutil.which("containerd-shim-runc-v2") is None:
        return "containerd-shim-runc-v2"
    return None


def busybox_rootfs(root: Path) -> Path:
    """A rootfs with Debian's static busybox as /bin/busybox, sh and sleep."""
    rootfs = root / "busybox-rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (rootfs / d).mkdir(exist_ok=True)
    shutil.copy2(binaries.require("busybox"), rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep"):
        link = rootfs / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    return rootfs


def oci_spec(rootfs: Path, cgroup_parent: str, cid: str) -> dict:
    """A complete runtime-spec 1.0 config, shaped like containerd's default for ``ctr run``.

    runc needs every part (namespaces, mounts, masked paths, capabilities); the stub reads
    only annotations but gets the same bytes, so both runtimes pay the same to decode it.
    """
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sleep", "1000"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs)},
        "hostname": "bench",
        "mounts": MOUNTS,
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "cgroupsPath": f"/{cgroup_parent}/{cid}",
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    }


def runc_options(root: Path) -> any_pb2.Any:
    """``containerd.runc.v1.Options{root: …}`` (field 7), so runc's state stays in the run.

    Encoded by hand: one string field does not justify vendoring the runc options proto.
    """
    value = str(root).encode()
    length, prefix = len(value), b""
    while True:  # protobuf varint
        byte, length = length & 0x7F, length >> 7
        prefix += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return any_pb2.Any(type_url="containerd.runc.v1.Options", value=b"\x3a" + prefix + value)


async def lifecycle(
    c: ContainerdClient, runtime: str, cid: str, spec: bytes, options: any_pb2.Any | None
) -> dict[str, float]:
    """One life cycle; seconds per step (STEPS), raw stubs so nothing but gRPC is timed."""
    md = (("containerd-namespace", NAMESPACE),)
    rt = containers_pb2.Container.Runtime(name=runtime, options=options)
    container = containers_pb2.Container(
        id=cid, runtime=rt, spec=any_pb2.Any(type_url=SPEC_TYPE_URL, value=spec)
    )
    took: dict[str, float] = {}
    t = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t
        now = time.perf_counter()
        took[step], t = now - t, now

    await c.containers.Create(
        containers_pb2.CreateContainerRequest(container=container), metadata=md, timeout=30
    )
    lap("container")
    await c.tasks.Create(tasks_pb2.CreateTaskRequest(container_id=cid), metadata=md, timeout=30)
    lap("create")
    await c.tasks.Start(tasks_pb2.StartRequest(container_id=cid), metadata=md, timeout=30)
    lap("start")
    await c.tasks.Kill(tasks_pb2.KillRequest(container_id=cid, signal=9), metadata=md, timeout=30)
    await c.tasks.Wait(tasks_pb2.WaitRequest(container_id=cid), metadata=md, timeout=30)
    lap("kill")
    await c.tasks.Delete(tasks_pb2.DeleteTaskRequest(container_id=cid), metadata=md, timeout=30)
    await c.containers.Delete(
        containers_pb2.DeleteContainerRequest(id=cid), metadata=md, timeout=30
    )
    lap("delete")
    return took


def own_cgroups(r: Run) -> str:
    """The cgroup parent of every bench container, registered so the janitor removes it.

    runc (cgroupfs, v1 or v2) removes each container's cgroup on delete but not the parent;
    registered before it exists, like everything a run creates. Only under *mounted*
    cgroup filesystems (v1 controllers, the v2 root): a directory under /sys/fs/cgroup that
    is no mount (an unmounted controller's name on the v1 tmpfs) cannot hold a cgroup, and
    removing ``rcv-<id>`` there failed with EROFS.
    """
    parent = f"rcv-{r.id}"
    for mount in sorted(set(janitor.cgroup_mounts())):
        r.janitor.cgroup(mount / parent)
    return parent


async def measure(c: Containerd, r: Run, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Warm up both runtimes once, then ``rounds`` interleaved life cycles of each."""
    rootfs = busybox_rootfs(c.dir)
    cgroups = own_cgroups(r)
    options = {RUNC_RUNTIME: runc_options(c.dir / "runc"), STUB_RUNTIME: None}
    client = ContainerdClient(str(c.address), NAMESPACE)
    await client.ensure_namespace()
    out: dict[str, list[dict[str, float]]] = {RUNC_RUNTIME: [], STUB_RUNTIME: []}
    try:
        for i in range(-1, rounds):  # round -1 warms the page cache; not counted
            order = [RUNC_RUNTIME, STUB_RUNTIME] if i % 2 == 0 else [STUB_RUNTIME, RUNC_RUNTIME]
            for runtime in order:
                cid = f"{runtime.split('.')[2]}-{i + 1}"
                spec = json.dumps(oci_spec(rootfs, cgroups, cid)).encode()
                took = await lifecycle(client, runtime, cid, spec, options[runtime])
                if i >= 0:
                    out[runtime].append(took)
    finally:
        await client.close()
    return out


def median_ms(samples: list[dict[str, float]], step: str | None = None) -> float:
    """Median over life cycles of one step (or of the whole life cycle), in ms."""
    return 1000 * statistics.median(s[step] if step else sum(s.values()) for s in samples)


def main() -> int:
    """Bring up, measure, print one line; exit 0 measured, 2 missing."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    absent = missing()
    if absent:
        print(f"containerd: skipped — {absent} is not installed (fix: ./ci/bootstrap)")
        return 2
    r = run_mod.start(purpose="bench-containerd")
    try:
        t0 = time.monotonic()
        c = Containerd(r).start()
        t_containerd = time.monotonic() - t0
        server = toxiproxy.start(r)
        bringup = time.monotonic() - t0
        samples = asyncio.run(measure(c, r, rounds))
        version = binaries.version_of("containerd", c.binary)
        server.stop()
        c.stop()
    except ReconvergeError as exc:
        print(f"containerd: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    finally:
        r.close()
    runc, stub = samples[RUNC_RUNTIME], samples[STUB_RUNTIME]
    m_runc, m_stub = median_ms(runc), median_ms(stub)
    ratio = m_stub / m_runc
    print(
        f"containerd: task life cycle (create, start, kill+wait, delete over gRPC) median of "
        f"{rounds}: stub {m_stub:.0f} ms, runc {m_runc:.0f} ms; ratio stub/runc {ratio:.2f} "
        f"(target <= {RATIO_TARGET:.1f}); bring-up containerd {version} + toxiproxy "
        f"{bringup:.2f} s (containerd {t_containerd:.2f} s; target <= {BRINGUP_TARGET_S:.0f} s)"
    )
    if ratio > RATIO_TARGET:
        steps = ", ".join(f"{s} {median_ms(stub, s):.0f}/{median_ms(runc, s):.0f}" for s in STEPS)
        print(f"containerd: stub slower; median ms stub/runc per step: {steps}", file=sys.stderr)
    if bringup > BRINGUP_TARGET_S:
        print(f"containerd: bring-up over the {BRINGUP_TARGET_S:.0f} s target", file=sys.stderr)
    # like every benchmark here: a missed target is exit 1, so ./ci/bench flags it
    return 0 if ratio <= RATIO_TARGET and bringup <= BRINGUP_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
