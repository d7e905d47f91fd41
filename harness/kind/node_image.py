"""``reconverge build kind-node``: the node image, built once per set of inputs.

The image is two trees in the cache — the debootstrap base (:mod:`rootfs`) and the ``kube``
tree (:mod:`layers`) — and a tag that hashes both: ``reconverge.local/kind-node:<digest>``;
the ``stub`` tree (our shim's code) is mounted into nodes at run time. Building makes the
trees; *loading* streams them as one tar into a dockerd (``docker import`` with kind's
ENTRYPOINT, ``container=docker`` and STOPSIGNAL). Every run has a dockerd of its own with an
empty image store, so a *seed* data root holding the image is made once (:func:`seed`) and
hard-linked into each run's dockerd before it starts.
Nothing is rebuilt unless an input changed; a missing input (the Kubernetes bundle, the
control-plane image archives) is one line naming the command that makes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import journal
from harness.errors import ProviderFailed, ReconvergeError
from harness.kind import layers, lock, rootfs

IMAGE_REPO = "reconverge.local/kind-node"
ENTRYPOINT = '["/usr/local/bin/reconverge-entrypoint", "/sbin/init"]'
ENV_BIN_DIR = "RECONVERGE_KIND_KUBE_BIN_DIR"


@dataclass(frozen=True)
class NodeImage:
    """A built node image: its tag and the trees a load streams, base first."""

    tag: str
    digest: str
    trees: tuple[Path, ...]
    versions: dict[str, str]


def bundle_dir() -> Path | None:
    """The directory holding kubeadm, kubelet and kubectl v1.34.4 (build cache or env)."""
    env = os.environ.get(ENV_BIN_DIR)
    if env:
        return Path(env)
    try:
        from harness import build

        d = build.binaries_dir("kubelet", layers.KUBERNETES_VERSION)
    except Exception:
        return None
    if d is None or not all((d / b).is_file() for b in layers.NODE_BINARIES):
        return None
    return d


def archives(*, log: Callable[[str], None] = print) -> list[layers.ImageArchive]:
    """The control-plane images kubeadm runs plus the busybox pod image.

    May build what is missing (minutes, cold); only :func:`ensure` calls it.

    Raises:
        ReconvergeError: a build failed (one line, from harness.images).
    """
    from harness.images import busybox, control_plane

    found = [*control_plane.archives(layers.KUBERNETES_VERSION, log=log), busybox.archive(log=log)]
    return [layers.ImageArchive(a.ref, Path(a.path)) for a in found]


def missing() -> str:
    """Why no node image is usable right now ("" when one is), without building anything."""
    if bundle_dir() is None:
        return "Kubernetes bundle v1.34.4 (kubelet, kubeadm, kubectl) not built"
    if rootfs.cached() is None:
        return "base rootfs not built"
    if cached() is None:
        return "node image not built for the current inputs"
    return ""


def _tag(digests: list[str]) -> tuple[str, str]:
    digest = hashlib.sha256(":".join(digests).encode()).hexdigest()[:16]
    return f"{IMAGE_REPO}:{digest}", digest


def _pointer() -> Path:
    return rootfs.cache_root() / "node-image.json"


def _image(base: rootfs.Rootfs, kube: Path, kube_digest: str) -> NodeImage:
    """The image of these base and kube trees (the stub tree is mounted, not imaged)."""
    tag, digest = _tag([base.digest, kube_digest])
    versions = {str(k): str(v) for k, v in dict(base.manifest.get("versions") or {}).items()}
    versions["kubernetes"] = layers.KUBERNETES_VERSION
    return NodeImage(tag, digest, (base.path, kube), versions)


def cached() -> NodeImage | None:
    """The last built node image, if its inputs are unchanged (cheap: stats, no hashing).

    The stub tree is not part of it (:func:`stub_tree`), so a harness commit never makes
    the image stale.
    """
    try:
        ptr = json.loads(_pointer().read_text())
    except (OSError, ValueError):
        return None
    base = rootfs.cached()
    kube = Path(ptr.get("kube", ""))
    bins = bundle_dir()
    if base is None or bins is None or base.digest != ptr.get("rootfs"):
        return None
    if not (kube / ".reconverge-layer.json").is_file():
        return None
    arcs = [layers.ImageArchive(r, Path(p)) for r, p in ptr.get("archives", [])]
    try:
        if layers._digest(layers.kube_inputs(bins, arcs)) != ptr.get("kube_digest"):
            return None
    except OSError:  # an archive or binary is gone
        return None
    return _image(base, kube, str(ptr["kube_digest"]))


def ensure(*, log: Callable[[str], None] = print) -> NodeImage:
    """Build whatever is missing (rootfs, image archives, kube tree); return the node image.

    Raises:
        ReconvergeError: an input is missing or a step failed (one line, with the fix).
    """
    with lock.held(rootfs.cache_root()):
        return _ensure(log=log)


def _ensure(*, log: Callable[[str], None]) -> NodeImage:
    t0 = time.monotonic()
    bins = bundle_dir()
    if bins is None:
        from harness import build

        build.ensure("kubernetes", layers.KUBERNETES_VERSION, log=log)
        bins = bundle_dir()
        if bins is None:
            raise ReconvergeError(
                "cannot build the kind node image: kubelet/kubeadm/kubectl not in the bundle",
                fix="reconverge build ensure kubernetes",
            )
    arcs = archives(log=log)
    base = rootfs.ensure(log=log)
    root = rootfs.cache_root()

    def make_kube(tree: Path) -> None:
        layers.write_kube_files(tree, bins)
        layers.import_images(tree, arcs, log=log)

    t1 = time.monotonic()
    inputs = layers.kube_inputs(bins, arcs)
    kube, kube_digest, built = layers.build_tree(root, "kube", inputs, make_kube)
    if built:
        log(f"kind-node: kube tree built in {time.monotonic() - t1:.1f} s ({kube})")
    _pointer().write_text(
        json.dumps(
            {
                "rootfs": base.digest,
                "kube": str(kube),
                "kube_digest": kube_digest,
                "archives": [[a.ref, str(a.path)] for a in arcs],
            },
            indent=1,
        )
    )
    image = _image(base, kube, kube_digest)
    stub_tree()
    merge(image)
    prune(keep={kube, *image.trees, stub_tree(), rootfs.cache_root() / f"node-{image.digest}"})
    seed(image, log=log)
    log(f"kind-node: {image.tag} ready in {time.monotonic() - t0:.1f} s")
    return image


def stub_tree() -> Path:
    """The stub tree of the current sources (made in about a second when they changed).

    Nodes mount its ``opt/reconverge`` read-only at /opt/reconverge.
    """
    inputs = layers.stub_inputs()
    tree = rootfs.cache_root() / f"stub-{layers._digest(inputs)}"
    if (tree / ".reconverge-layer.json").is_file():
        return tree
    with lock.held(rootfs.cache_root()):
        tree, _digest, _built = layers.build_tree(
            rootfs.cache_root(), "stub", inputs, layers.write_stub_tree
        )
    return tree


def load(image: NodeImage, docker_env: dict[str, str], *, timeout: float = 600.0) -> float:
    """Import ``image`` into the dockerd of ``docker_env`` unless it is there; seconds spent.

    ``tar`` streams the merged tree (:func:`merge`) straight into ``docker import``: no
    tarball on disk.

    Raises:
        ProviderFailed: tar or docker import failed (stderr included).
    """
    have = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image.tag],
        capture_output=True,
        env=docker_env,
        timeout=30,
        check=False,
    )
    if have.returncode == 0:
        return 0.0
    t0 = time.monotonic()
    merged = merge(image)
    tar_argv = ["tar", "--numeric-owner", "--exclude=./.reconverge-*", "-cf", "-"]
    tar_argv += ["-C", str(merged), "."]
    tar = subprocess.Popen(tar_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        imp = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                f"ENTRYPOINT {ENTRYPOINT}",
                "--change",
                "ENV container=docker",
                "--change",
                f"LABEL io.reconverge.kind-node.digest={image.digest}",
                "-",
                image.tag + "-import",
            ],
            stdin=tar.stdout,
            capture_output=True,
            env=docker_env,
            timeout=timeout,
            check=False,
        )
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar_err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        tar.wait(timeout=60)
    if imp.returncode != 0:
        raise ProviderFailed(
            f"docker import of {image.tag} failed: {imp.stderr.decode(errors='replace').strip()}"
        )
    if tar.returncode != 0:
        raise ProviderFailed(f"tar of the node image trees failed: {tar_err.strip()[-300:]}")
    _stop_signal(image.tag, docker_env)
    took = time.monotonic() - t0
    journal.emit("kind", "node_image_loaded", tag=image.tag, seconds=round(took, 1))
    return took


def _stop_signal(tag: str, docker_env: dict[str, str]) -> None:
    """Give ``tag`` STOPSIGNAL SIGRTMIN+3 (systemd's clean halt) on top of ``tag-import``.

    Why a build: dockerd 20.10's ``import --change`` does not accept STOPSIGNAL. The classic
    builder takes a local image in FROM without pulling and adds no layer for metadata.
    """
    out = subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"],
        input=f"FROM {tag}-import\nSTOPSIGNAL SIGRTMIN+3\n".encode(),
        capture_output=True,
        env={**docker_env, "DOCKER_BUILDKIT": "0"},
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise ProviderFailed(
            f"docker build (STOPSIGNAL) of {tag} failed: {out.stderr.decode(errors='replace')}"
        )
    subprocess.run(
        ["docker", "rmi", f"{tag}-import"], capture_output=True, env=docker_env, timeout=60
    )


#: merged trees kept in the cache (older ones are pruned when a new one is made)
KEEP_MERGED = 2


def merge(image: NodeImage) -> Path:
    """One tree with the image's trees laid over each other (later wins), hard-linked.

    Why: ``docker import`` refuses a tar with a path twice, so the trees cannot simply be
    concatenated. ``cp -al`` costs links, not bytes, and the tree is kept per digest, so a
    run pays only for the tar stream. Files are replaced (never written through a link),
    so the cached trees below stay intact.
    """
    root = rootfs.cache_root()
    final = root / f"node-{image.digest}"
    if (final / ".reconverge-merged").is_file():
        return final
    with lock.held(root):
        return _merge(image, final)


def _merge(image: NodeImage, final: Path) -> Path:
    if (final / ".reconverge-merged").is_file():  # made while we waited for the lock
        return final
    root = final.parent
    work = final.with_name(final.name + ".partial")
    subprocess.run(["rm", "-rf", str(work)], check=False, timeout=300)
    first, *rest = image.trees
    argv = ["cp", "-al", str(first), str(work)]
    for step in [
        argv,
        *(["cp", "-al", "--remove-destination", f"{t}/.", f"{work}/"] for t in rest),
    ]:
        out = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if out.returncode != 0:
            raise ProviderFailed(f"{' '.join(step)} failed: {out.stderr.strip()[-300:]}")
    (work / ".reconverge-merged").write_text(image.tag + "\n")
    os.utime(work)  # cp -a kept the base's old mtime; pruning orders by mtime
    work.rename(final)
    merged = sorted(root.glob("node-*[0-9a-f]"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in merged[KEEP_MERGED:]:
        subprocess.run(["rm", "-rf", str(old)], check=False, timeout=300)
    return final


def prune(*, keep: set[Path], newest: int = 2) -> list[Path]:
    """Remove old kube, stub and merged trees (never one in ``keep``, never the newest few).

    Why: every harness commit makes a stub tree and every image a merged tree; without
    pruning the cache grows by a node image's worth of directory entries each time.
    """
    removed = []
    root = rootfs.cache_root()
    for prefix in ("kube-", "stub-", "node-"):
        # a running cluster may still mount an older stub tree: keep more of those
        keep_n = max(newest, 8) if prefix == "stub-" else newest
        trees = sorted(
            (p for p in root.glob(prefix + "*") if p.is_dir() and not p.name.endswith(".partial")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in trees[keep_n:]:
            if old not in keep:
                subprocess.run(["rm", "-rf", str(old)], check=False, timeout=300)
                removed.append(old)
    return removed


def seed(image: NodeImage, *, log: Callable[[str], None] = print) -> Path:
    """A dockerd data root holding only this image (``image/`` + ``overlay2/``), made once.

    Why: every run's dockerd starts empty, and importing the node image costs 18-30 s per
    run on 2 cores; hard-linking a seed into the run's data root before dockerd starts
    costs about a second (:func:`harness.providers.docker.engine` ``seed=``).
    """

    root = rootfs.cache_root()
    final = root / f"dockerd-{image.digest}"
    if (final / ".reconverge-seed").is_file():
        return final
    with lock.held(root):
        return _seed(image, final, log=log)


def _seed(image: NodeImage, final: Path, *, log: Callable[[str], None]) -> Path:
    from harness import run as run_mod
    from harness.providers import docker

    if (final / ".reconverge-seed").is_file():  # made while we waited for the lock
        return final
    root = final.parent
    work = final.with_name(final.name + ".partial")
    subprocess.run(["rm", "-rf", str(work)], check=False, timeout=300)
    t0 = time.monotonic()
    run = run_mod.start(purpose="kind-node-seed")
    try:
        eng = docker.engine(run, private=True, data_root=work)
        load(image, eng.env())
        eng.stop()
    finally:
        run.close()
    for child in work.iterdir():
        if child.name not in ("image", "overlay2"):
            subprocess.run(["rm", "-rf", str(child)], check=False, timeout=300)
    (work / ".reconverge-seed").write_text(image.tag + "\n")
    os.utime(work)
    work.rename(final)
    seeds = sorted(root.glob("dockerd-*[0-9a-f]"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in seeds[KEEP_MERGED:]:
        subprocess.run(["rm", "-rf", str(old)], check=False, timeout=300)
    log(f"kind-node: dockerd seed for {image.tag} in {time.monotonic() - t0:.1f} s")
    return final
