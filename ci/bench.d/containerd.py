"""Benchmark: a task life cycle on the stub shim vs on runc, through one containerd.

Run as ``.venv/bin/python ci/bench.d/containerd.py``. One private containerd 1.6.20; the same
``ctr`` steps (run -d = container + task create + start, task delete -f = kill + delete,
container delete) with ``io.containerd.runc.v2`` on a busybox rootfs and with the stub,
interleaved so both see the same machine. Prints the medians and the ratio stub/runc
(target <= 1.0), then the bring-up time of containerd + toxiproxy (target <= 3 s).
Exit 1 when a target is missed, 2 when a component is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from a bare checkout

from harness import binaries  # after the path set-up above
from harness import run as run_mod
from harness.errors import ReconvergeError
from harness.providers import toxiproxy
from harness.providers.containerd import STUB_RUNTIME, Containerd

ROUNDS = 8
RATIO_TARGET = 1.0
BRINGUP_TARGET_S = 3.0
RUNC_RUNTIME = "io.containerd.runc.v2"


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


def lifecycle(c: Containerd, runtime: str, rootfs: Path, cid: str) -> float:
    t0 = time.perf_counter()
    c.ctr("bench", "run", "-d", "--null-io", "--runtime", runtime, "--runc-root",
          str(c.dir / "runc"), "--rootfs", str(rootfs), cid, "/bin/sleep", "1000")  # fmt: skip
    c.ctr("bench", "task", "delete", "-f", cid)
    c.ctr("bench", "container", "delete", cid)
    return time.perf_counter() - t0


SYSTEM_DIRS = (Path("/run/containerd"), Path("/run/containerd/s"))  # atexit runs LIFO


def main() -> int:
    # the runc shim of 1.6 puts its socket under /run/containerd/s whatever the config says;
    # remove what this run created there, and the dirs themselves if it created them
    for d in SYSTEM_DIRS:
        if not d.exists():
            atexit.register(_rmdir_if_empty, d)
    r = run_mod.start(purpose="bench-containerd")
    try:
        t0 = time.monotonic()
        c = Containerd(r).start()
        server = toxiproxy.start(r)
        bringup = time.monotonic() - t0
        rootfs = busybox_rootfs(c.dir)
        runc, stub = [], []
        lifecycle(c, RUNC_RUNTIME, rootfs, "warm-runc")  # first runs pay for page cache
        lifecycle(c, STUB_RUNTIME, rootfs, "warm-stub")
        for i in range(ROUNDS):
            runc.append(lifecycle(c, RUNC_RUNTIME, rootfs, f"runc-{i}"))
            stub.append(lifecycle(c, STUB_RUNTIME, rootfs, f"stub-{i}"))
        server.stop()
        c.stop()
    except ReconvergeError as exc:
        print(f"containerd: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    finally:
        r.close()
    m_runc, m_stub = statistics.median(runc), statistics.median(stub)
    ratio = m_stub / m_runc
    print(
        f"containerd: task life cycle (run -d, delete -f, container delete) median over {ROUNDS}: "
        f"stub {m_stub * 1000:.0f} ms, runc {m_runc * 1000:.0f} ms; ratio stub/runc {ratio:.2f} "
        f"(target <= {RATIO_TARGET:.1f})"
    )
    print(
        f"containerd: bring-up of containerd 1.6.20 + toxiproxy {bringup:.2f} s "
        f"(target <= {BRINGUP_TARGET_S:.0f} s)"
    )
    return 0 if ratio <= RATIO_TARGET and bringup <= BRINGUP_TARGET_S else 1


def _rmdir_if_empty(d: Path) -> None:
    with contextlib.suppress(OSError):
        d.rmdir()


if __name__ == "__main__":
    sys.exit(main())
