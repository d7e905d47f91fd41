"""The node's base root filesystem: Debian bookworm from ``debootstrap --variant=minbase``.

Why debootstrap and not ``FROM debian``: there is no registry, and the Debian mirror is
reachable. Why bookworm: its systemd 252 still runs on cgroup v1 hosts (trixie's 257 treats
v1 as obsolete), and its containerd is the 1.6.20 the seed-c case is about. The result is a
directory in the cache named by a hash of everything that decides its contents (suite,
mirror, variant, package list, recipe revision), so it is built once per machine and reused
by every node image built on top of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.build import progress
from harness.errors import ReconvergeError

SUITE = "bookworm"
MIRROR = os.environ.get("RECONVERGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: What kind's node contract needs (systemd as init, containerd + runc + CNI plugins,
#: iptables/conntrack/iproute2 for kubelet and CNI, util-linux/mount for the entrypoint),
#: plus python3 for the stub shim.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "python3",
    "iptables",
    "conntrack",
    "iproute2",
    "util-linux",
    "mount",
    "kmod",
    "procps",
    "ethtool",
    "socat",
    "ca-certificates",
    "libseccomp2",
)
#: Bump when the recipe below changes what ends up in the tree.
RECIPE = "1"


def cache_root() -> Path:
    """``$RECONVERGE_CACHE/kind`` (default ``~/.cache/reconverge/kind``)."""
    from harness.build import cache

    return cache.root() / "kind"


def inputs() -> dict[str, object]:
    """Everything that decides the tree's contents."""
    return {
        "suite": SUITE,
        "mirror": MIRROR,
        "variant": "minbase",
        "packages": sorted(PACKAGES),
        "recipe": RECIPE,
    }


def digest() -> str:
    """16 hex of sha256 over :func:`inputs`."""
    raw = json.dumps(inputs(), sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Rootfs:
    """A finished base tree and its manifest."""

    path: Path
    digest: str
    manifest: dict[str, object]


def path() -> Path:
    """Where the base tree for the current inputs lives (it may not exist yet)."""
    return cache_root() / f"rootfs-{digest()}"


def cached() -> Rootfs | None:
    """The finished tree for the current inputs, or None."""
    p = path()
    m = p / ".reconverge-rootfs.json"
    if not m.is_file():
        return None
    return Rootfs(p, digest(), json.loads(m.read_text()))


def _run(argv: list[str], *, log: Path, what: str, timeout: float) -> None:
    with open(log, "ab") as f:
        f.write(f"$ {' '.join(argv)}\n".encode())
        f.flush()
        try:
            # debootstrap is silent for a minute or two on a cold machine: a heartbeat line
            # (with the log's newest line) keeps CI logs alive, at most every 10 s
            with progress.Heartbeat(what, label="kind-node", detail=progress.last_line(log)):
                out = subprocess.run(
                    argv, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False
                )
        except subprocess.TimeoutExpired:
            raise ReconvergeError(
                f"{what} did not finish within {timeout:.0f} s (log {log})",
                fix="check the Debian mirror, then reconverge build kind-node",
            ) from None
    if out.returncode != 0:
        tail = "; ".join(log.read_text(errors="replace").splitlines()[-3:])
        raise ReconvergeError(
            f"{what} failed with exit {out.returncode}: {tail} (log {log})",
            fix="apt-get install debootstrap; check the mirror; reconverge build kind-node",
        )


def ensure(*, log: Callable[[str], None] = print, timeout: float = 1200.0) -> Rootfs:
    """Build the base tree unless it is cached; returns it.

    Built into ``<path>.partial`` and renamed at the end, so an interrupted build is never
    mistaken for a finished one.

    Raises:
        ReconvergeError: debootstrap is missing or failed (the log file is named).
    """
    hit = cached()
    if hit is not None:
        return hit
    if shutil.which("debootstrap") is None:
        raise ReconvergeError(
            "debootstrap is not installed (the kind node's root filesystem needs it)",
            fix="apt-get install debootstrap (or ./ci/bootstrap)",
        )
    final = path()
    work = final.with_name(final.name + ".partial")
    cache_root().mkdir(parents=True, exist_ok=True)
    logfile = cache_root() / f"rootfs-{digest()}.log"
    logfile.write_text("")
    if work.exists():
        _unmount_below(work)
        shutil.rmtree(work)
    t0 = time.monotonic()
    log(f"kind-node: debootstrap {SUITE} ({len(PACKAGES)} packages) into {work} (log {logfile})")
    _run(
        [
            "nice",
            "-n",
            "10",
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(work),
            MIRROR,
        ],
        log=logfile,
        what="debootstrap",
        timeout=timeout,
    )
    _unmount_below(work)
    _trim(work)
    versions = _versions(work)
    manifest = {
        **inputs(),
        "digest": digest(),
        "seconds": round(time.monotonic() - t0, 1),
        "versions": versions,
        "built_at": time.time(),
    }
    (work / ".reconverge-rootfs.json").write_text(json.dumps(manifest, indent=1))
    work.rename(final)
    log(f"kind-node: base rootfs ready in {manifest['seconds']} s ({versions})")
    return Rootfs(final, digest(), manifest)


def _unmount_below(root: Path) -> None:
    """debootstrap leaves /proc or /sys mounted inside the tree when it fails midway."""
    from harness.janitor import mounts_under

    for point in mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _trim(root: Path) -> None:
    """Drop what a node never needs: apt lists and caches, docs, man pages, locales."""
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        p = root / rel
        if p.is_dir():
            for child in p.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _versions(root: Path) -> dict[str, str]:
    """Installed versions of the packages that matter for verdicts."""
    want = {"containerd", "runc", "systemd", "python3", "containernetworking-plugins"}
    out: dict[str, str] = {}
    status = root / "var/lib/dpkg/status"
    pkg = ""
    for line in status.read_text(errors="replace").splitlines():
        if line.startswith("Package: "):
            pkg = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and pkg in want:
            out[pkg] = line.split(": ", 1)[1]
    return out
