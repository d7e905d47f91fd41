"""The trees of a node: ``kube`` (laid over the base rootfs in the image) and ``stub``.

Why trees instead of a Dockerfile: there is no base image to build ``FROM`` and no
registry; ``docker import`` of the merged tree gives the node image in one step. Why the
``stub`` tree (our shim's code and its Python dependencies) is not in the image but mounted
read-only into every node: it changes with every harness commit, and an image that changed
with it would be re-imported and re-seeded each time. The ``kube`` tree (binaries, units,
preloaded images in containerd's store, the shim's entry points) is large and changes only
with the bundle, the images or ``fixtures/kind``.

Every path here is under ``usr/``, ``etc/``, ``var/`` or ``kind/``: the base is merged-usr,
and a real ``lib/`` directory in a later tree would replace the ``/lib`` symlink on import.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import fixtures_dir
from harness.errors import ReconvergeError

FIXTURES = fixtures_dir.path("kind")
KUBERNETES_VERSION = "v1.34.4"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"
NODE_BINARIES = ("kubeadm", "kubelet", "kubectl")
#: Units a node must not run: they act on the host kernel through a privileged container
#: (sysctl, binfmt, modules), need hardware or dbus (logind, getty), or are periodic chores.
MASKED_UNITS = (
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-modules-load.service",
    "systemd-firstboot.service",
    "systemd-repart.service",
    "systemd-pstore.service",
    "systemd-logind.service",
    "systemd-journald-audit.socket",
    "dev-hugepages.mount",
    "sys-fs-fuse-connections.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "getty@tty1.service",
    "getty-static.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
)
#: Where nodes see the stub tree's ``opt/reconverge`` (a read-only mount, see kind.py).
STUB_MOUNT = "/opt/reconverge"
#: Bump when the recipes below change what ends up in a tree.
KUBE_RECIPE = "2"
STUB_RECIPE = "1"


@dataclass(frozen=True)
class ImageArchive:
    """An OCI image-layout tarball and the reference kubeadm/kubelet will ask for."""

    ref: str
    path: Path


def _file_key(path: Path) -> list[object]:
    """Identity of a large input without reading it: path, size, mtime (ns)."""
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _tree_hash(root: Path, *, suffixes: Iterable[str] | None = None) -> str:
    """sha256 over the relative paths and bytes of every file below ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts:
            continue
        if suffixes is not None and p.suffix not in suffixes:
            continue
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


# -- the kube tree ------------------------------------------------------------------------


def kube_inputs(bin_dir: Path, archives: list[ImageArchive]) -> dict[str, object]:
    """Everything that decides the kube tree (binaries and archives by size and mtime)."""
    return {
        "recipe": KUBE_RECIPE,
        "kubernetes": KUBERNETES_VERSION,
        "pause": PAUSE_IMAGE,
        "binaries": {b: _file_key(bin_dir / b) for b in NODE_BINARIES},
        "archives": sorted([a.ref, *_file_key(a.path)] for a in archives),
        "fixtures": _fixtures_hash(),
        "masked": sorted(MASKED_UNITS),
    }


#: The fixtures that end up in the image (kubeadm-patches.yaml is read at create time).
IMAGE_FIXTURES = (
    "entrypoint.sh",
    "containerd-config.toml",
    "cni.conflist.in",
    "default-storage.yaml",
    "systemd/kubelet.service",
    "systemd/kubelet.slice",
    "systemd/10-kubeadm.conf",
    "systemd/containerd-override.conf",
    "systemd/50-reconverge-journal.conf",
    "reconverge-node.tmpfiles",
)


def _fixtures_hash() -> str:
    h = hashlib.sha256()
    for rel in IMAGE_FIXTURES:
        h.update(rel.encode() + b"\0" + (FIXTURES / rel).read_bytes())
    return h.hexdigest()


def _digest(inputs: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _install(src: Path, dst: Path, mode: int = 0o644) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def _link(target: str, at: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    if at.is_symlink() or at.exists():
        at.unlink()
    at.symlink_to(target)


def write_kube_files(tree: Path, bin_dir: Path) -> None:
    """Binaries, units, containerd/CNI configuration and kind's files (no images)."""
    for b in NODE_BINARIES:
        _install(bin_dir / b, tree / "usr/bin" / b, 0o755)
    _install(FIXTURES / "entrypoint.sh", tree / "usr/local/bin/reconverge-entrypoint", 0o755)
    sd = tree / "etc/systemd/system"
    _install(FIXTURES / "systemd/kubelet.service", sd / "kubelet.service")
    _install(FIXTURES / "systemd/kubelet.slice", sd / "kubelet.slice")
    _install(FIXTURES / "systemd/10-kubeadm.conf", sd / "kubelet.service.d/10-kubeadm.conf")
    _install(
        FIXTURES / "systemd/containerd-override.conf", sd / "containerd.service.d/10-kind.conf"
    )
    # the stub shims journal under /run/reconverge-node (harness/kind/fixtures.py reads it)
    _install(
        FIXTURES / "systemd/50-reconverge-journal.conf",
        sd / "containerd.service.d/50-reconverge-journal.conf",
    )
    _install(FIXTURES / "reconverge-node.tmpfiles", tree / "etc/tmpfiles.d/reconverge-node.conf")
    wants = sd / "multi-user.target.wants"
    _link("/etc/systemd/system/kubelet.service", wants / "kubelet.service")
    _link("/usr/lib/systemd/system/containerd.service", wants / "containerd.service")
    for unit in MASKED_UNITS:
        _link("/dev/null", sd / unit)
    journald = tree / "etc/systemd/journald.conf.d/10-kind.conf"
    journald.parent.mkdir(parents=True, exist_ok=True)
    # the host's kernel log is not the node's
    journald.write_text("[Journal]\nReadKMsg=no\nStorage=volatile\n")
    config = (FIXTURES / "containerd-config.toml").read_text().replace("@PAUSE_IMAGE@", PAUSE_IMAGE)
    (tree / "etc/containerd").mkdir(parents=True, exist_ok=True)
    (tree / "etc/containerd/config.toml").write_text(config)
    (tree / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    (tree / "etc/cni/net.d").mkdir(parents=True, exist_ok=True)
    kind = tree / "kind"
    (kind / "manifests").mkdir(parents=True, exist_ok=True)
    (kind / "version").write_text(KUBERNETES_VERSION + "\n")
    _install(FIXTURES / "cni.conflist.in", kind / "cni.conflist.in")
    _install(FIXTURES / "default-storage.yaml", kind / "manifests/default-storage.yaml")
    # the stub: its code is mounted at /opt/reconverge by the provider (kind extraMounts),
    # only the entry points live in the image
    pth = tree / "usr/lib/python3/dist-packages/reconverge.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    pth.write_text(STUB_MOUNT + "/lib\n")
    shim = tree / "usr/local/bin/containerd-shim-stub-v2"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(SHIM_SCRIPT)
    os.chmod(shim, 0o755)


def import_images(
    tree: Path, archives: list[ImageArchive], *, log: Callable[[str], None], timeout: float = 600
) -> list[str]:
    """Load the archives into ``tree/var/lib/containerd`` (namespace ``k8s.io``, not unpacked).

    Why at build time and with a containerd of our own on the host: the node's containerd
    then boots with every control-plane image already present, so no node ever pulls, and a
    node's start does not pay for the import. Debian's containerd 1.6.20 on the host is the
    same release as the node's, so the store's format matches. Returns the image names.
    """
    from harness import run as run_mod
    from harness.providers.process import ManagedProcess, unix_open

    root = tree / "var/lib/containerd"
    root.mkdir(parents=True, exist_ok=True)
    run = run_mod.start(purpose="kind-node-images")
    try:
        sock = run.path("ctd", mkdir=True) / "c.sock"
        cfg = run.path("ctd") / "config.toml"
        # only what an import needs: content, metadata, images; no CRI, no snapshot work
        cfg.write_text(
            'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri",'
            ' "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",'
            ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",'
            ' "io.containerd.snapshotter.v1.aufs"]\n'
        )
        argv = [
            "containerd",
            f"--config={cfg}",
            f"--root={root}",
            f"--state={run.path('ctd', 'state')}",
            f"--address={sock}",
        ]
        ctd = ManagedProcess(run, "containerd-import", argv).start()
        ctd.wait_ready(lambda: unix_open(sock), timeout=30, what="socket answering")
        names = []
        for a in archives:
            t0 = time.monotonic()
            out = subprocess.run(
                [
                    "ctr",
                    f"--address={sock}",
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    "--no-unpack",
                    f"--index-name={a.ref}",
                    str(a.path),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if out.returncode != 0:
                raise ReconvergeError(
                    f"ctr images import {a.path} failed: {out.stderr.strip()[-300:]}",
                    fix="rebuild the image archives (reconverge build kind-node --force)",
                )
            names.append(a.ref)
            log(f"kind-node: imported {a.ref} in {time.monotonic() - t0:.1f} s")
        listed = subprocess.run(
            ["ctr", f"--address={sock}", "-n", "k8s.io", "images", "ls", "-q"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        missing = [a.ref for a in archives if a.ref not in listed]
        if missing:
            raise ReconvergeError(
                f"after import, containerd's k8s.io namespace lacks {', '.join(missing)}"
                f" (it lists {', '.join(listed) or 'nothing'})",
                fix="check the archives' tags (harness/images/control_plane.py)",
            )
        ctd.stop(grace=10)
    finally:
        run.close()
    return names


# -- the stub tree ------------------------------------------------------------------------

#: Our packages the shim imports (failpoints has no harness import; harness pulls in the
#: shim, ttrpc, protos and journal lazily). Whole packages: a missing module would only
#: show up as a shim that cannot start inside a node.
STUB_PACKAGES = ("harness", "failpoints")
#: Third-party distributions the shim needs at run time.
STUB_DISTRIBUTIONS = ("protobuf",)

SHIM_SCRIPT = """#!/usr/bin/python3
# containerd-shim-stub-v2 inside a reconverge kind node: the harness's pure-Python shim,
# run by the node's python3 from /opt/reconverge/lib (reconverge.pth puts it on sys.path).
import sys

from harness.shim.main import main

sys.exit(main())
"""


def _package_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _distribution_files(name: str) -> list[tuple[Path, Path]]:
    """(absolute source, path relative to site-packages) of an installed distribution."""
    from importlib import metadata

    dist = metadata.distribution(name)
    out = []
    for f in dist.files or []:
        if "__pycache__" in f.parts or f.parts[0].endswith(".dist-info") or ".." in f.parts:
            continue
        src = Path(str(dist.locate_file(f)))
        if src.is_file():
            out.append((src, Path(*f.parts)))
    return out


def stub_inputs() -> dict[str, object]:
    """Our packages' sources and the exact third-party files the shim needs."""
    from importlib import metadata

    root = _package_root()
    return {
        "recipe": STUB_RECIPE,
        "packages": {p: _tree_hash(root / p, suffixes={".py"}) for p in STUB_PACKAGES},
        "distributions": {d: metadata.version(d) for d in STUB_DISTRIBUTIONS},
        "script": hashlib.sha256(SHIM_SCRIPT.encode()).hexdigest(),
    }


def write_stub_tree(tree: Path) -> None:
    """``opt/reconverge/lib``: our packages and protobuf, mounted read-only into nodes."""
    lib = tree / "opt/reconverge/lib"
    root = _package_root()
    for pkg in STUB_PACKAGES:
        shutil.copytree(
            root / pkg,
            lib / pkg,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi"),
            dirs_exist_ok=True,
        )
    for dist in STUB_DISTRIBUTIONS:
        for src, rel in _distribution_files(dist):
            _install(src, lib / rel, 0o755 if src.suffix == ".so" else 0o644)


# -- building a tree once -----------------------------------------------------------------


def build_tree(
    base: Path, name: str, inputs: dict[str, object], make: Callable[[Path], None]
) -> tuple[Path, str, bool]:
    """``base/<name>-<digest>`` made by ``make`` unless it exists; (path, digest, built)."""
    digest = _digest(inputs)
    final = base / f"{name}-{digest}"
    if (final / ".reconverge-layer.json").is_file():
        return final, digest, False
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, mode=0o755)
    make(work)
    (work / ".reconverge-layer.json").write_text(json.dumps(inputs, sort_keys=True, indent=1))
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    return final, digest, True
