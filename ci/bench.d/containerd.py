"""Benchmark: a task life cycle on the stub shim vs on runc, through one containerd.

Run as ``.venv/bin/python ci/bench.d/containerd.py [rounds]``. One private containerd 1.6.20;
over its gRPC API (no ``ctr`` process per step, so the figure is containerd + shim, not
client start-up) each life cycle is: container create, task create (the shim starts),
start, kill SIGKILL + wait for the exit, task delete + container delete. Three runtimes
alternate round by round (the order rotates every round, so all see the same machine):
``io.containerd.runc.v2`` running ``/bin/sleep`` from a busybox rootfs under a full OCI spec
written here; the stub **warm** (``io.containerd.stub.v2``: the C launcher and the run's
fork server, as every test gets it); and the stub **cold** (the same containerd, runtime
given as the absolute path of the virtualenv's Python console script: containerd 1.6
accepts a path as the runtime name, so no fork server is involved). The stub runs the
same spec.

Prints the medians (of ``rounds``, default 10) of the whole life cycle and of each step,
the ratios stub/runc (targets: warm life cycle <= 1.0, warm create and warm delete each no
slower than runc's), the fork server's hit rate (warm daemons that were forked, from the
journal: a fallback to the cold path counts as a miss) and the bring-up of containerd +
fork server + toxiproxy (target <= 3 s). Exit 0 when every target is met, 1 when one is
missed (./ci/bench flags it), 2 when a component is missing.
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
from harness.journal import merge
from harness.protos import containers_pb2, tasks_pb2
from harness.providers import toxiproxy
from harness.providers.containerd import STUB_RUNTIME, Containerd
from harness.providers.containerd_client import SPEC_TYPE_URL, ContainerdClient
from harness.run import Run
from harness.shim import warm

ROUNDS = 10
RATIO_TARGET = 1.0
BRINGUP_TARGET_S = 3.0
RUNC_RUNTIME = "io.containerd.runc.v2"
COLD = "stub-cold"  # key of the cold stub (its runtime name is a path, see measure)
NAMESPACE = "bench"
STEPS = ("container", "create", "start", "kill", "delete")
LABEL = {RUNC_RUNTIME: "runc", STUB_RUNTIME: "stub", COLD: "cold"}
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
    """Warm up every runtime once, then ``rounds`` interleaved life cycles of each."""
    rootfs = busybox_rootfs(c.dir)
    cgroups = own_cgroups(r)
    runtime = {
        RUNC_RUNTIME: RUNC_RUNTIME,
        STUB_RUNTIME: STUB_RUNTIME,
        COLD: str(warm.cold_binary()),
    }
    options = {RUNC_RUNTIME: runc_options(c.dir / "runc"), STUB_RUNTIME: None, COLD: None}
    client = ContainerdClient(str(c.address), NAMESPACE)
    await client.ensure_namespace()
    kinds = list(runtime)
    out: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    try:
        for i in range(-1, rounds):  # round -1 warms the page cache; not counted
            shift = (i + 1) % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                cid = f"{LABEL[kind]}-{i + 1}"
                spec = json.dumps(oci_spec(rootfs, cgroups, cid)).encode()
                took = await lifecycle(client, runtime[kind], cid, spec, options[kind])
                if i >= 0:
                    out[kind].append(took)
    finally:
        await client.close()
    return out


def hit_rate(run_dir: Path) -> tuple[int, int, int]:
    """(forked, all) warm-stub daemons, and ``delete``s the fork server served, from the
    journal: a warm stub whose daemon was not forked fell back to the cold path."""
    forked = total = deletes = 0
    for rec in merge.load(run_dir):
        cid = str(rec.fields.get("id", ""))
        if not cid.startswith(LABEL[STUB_RUNTIME] + "-"):
            continue
        if rec.component == "shim" and rec.event == "serving":
            total += 1
            forked += bool(rec.fields.get("forked"))
        elif rec.component == "shim-fork" and rec.event == "done":
            deletes += rec.fields.get("action") == "delete" and rec.fields.get("code") == 0
    return forked, total, deletes


def median_ms(samples: list[dict[str, float]], step: str | None = None) -> float:
    """Median over life cycles of one step (or of the whole life cycle), in ms."""
    return 1000 * statistics.median(s[step] if step else sum(s.values()) for s in samples)


def main() -> int:
    """Bring up, measure, print; exit 0 every target met, 1 one missed, 2 missing."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    absent = missing()
    if absent:
        print(f"containerd: skipped — {absent} is not installed (fix: ./ci/bootstrap)")
        return 2
    r = run_mod.start(purpose="bench-containerd")
    try:
        t0 = time.monotonic()
        c = Containerd(r).start()  # the fork server first, then containerd
        t_containerd = time.monotonic() - t0
        server = toxiproxy.start(r)
        bringup = time.monotonic() - t0
        samples = asyncio.run(measure(c, r, rounds))
        version = binaries.version_of("containerd", c.binary)
        forked, total, deletes = hit_rate(r.dir)
        server.stop()
        c.stop()
    except ReconvergeError as exc:
        print(f"containerd: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    finally:
        r.close()
    runc = samples[RUNC_RUNTIME]
    m_runc = median_ms(runc)
    ratio = {k: median_ms(samples[k]) / m_runc for k in (STUB_RUNTIME, COLD)}
    step_ratio = {
        (k, s): median_ms(samples[k], s) / median_ms(runc, s)
        for k in (STUB_RUNTIME, COLD)
        for s in STEPS
    }
    print(
        f"containerd: task life cycle (create, start, kill+wait, delete over gRPC) median of "
        f"{rounds}: stub warm {median_ms(samples[STUB_RUNTIME]):.0f} ms, stub cold "
        f"{median_ms(samples[COLD]):.0f} ms, runc {m_runc:.0f} ms; ratio stub/runc warm "
        f"{ratio[STUB_RUNTIME]:.2f} (target <= {RATIO_TARGET:.1f}), cold {ratio[COLD]:.2f}; "
        f"fork server hit rate {forked}/{total} daemons forked, {deletes} deletes served; "
        f"bring-up containerd {version} + fork server + toxiproxy {bringup:.2f} s "
        f"(containerd {t_containerd:.2f} s; target <= {BRINGUP_TARGET_S:.0f} s)"
    )
    for k in (RUNC_RUNTIME, STUB_RUNTIME, COLD):
        steps = ", ".join(f"{s} {median_ms(samples[k], s):.1f}" for s in STEPS)
        vs = (
            ""
            if k == RUNC_RUNTIME
            else " (vs runc: " + ", ".join(f"{s} {step_ratio[k, s]:.2f}" for s in STEPS) + ")"
        )
        print(f"containerd: median ms per step, {LABEL[k]}: {steps}{vs}")
    missed = []
    if ratio[STUB_RUNTIME] > RATIO_TARGET:
        missed.append(f"warm life cycle ratio {ratio[STUB_RUNTIME]:.2f}")
    missed += [
        f"warm {s} ratio {step_ratio[STUB_RUNTIME, s]:.2f}"
        for s in ("create", "delete")
        if step_ratio[STUB_RUNTIME, s] > 1.0
    ]
    if total == 0 or forked < total:
        missed.append(f"fork server hit rate {forked}/{total}")
    if bringup > BRINGUP_TARGET_S:
        missed.append(f"bring-up {bringup:.2f} s")
    for line in missed:
        print(f"containerd: target missed: {line}", file=sys.stderr)
    # like every benchmark here: a missed target is exit 1, so ./ci/bench flags it
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
