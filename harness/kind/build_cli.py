"""``reconverge build kind-node``: make (or confirm) the node image, print what it took.

Why a command of its own rather than a build-cache component: the node image is not a Go
build but an assembly of one (the Kubernetes bundle), Debian packages and our files, and
its artifact is three trees and a tag rather than one binary.
"""

from __future__ import annotations

import argparse
import time

from harness.kind import node_image, rootfs


def main(argv: list[str]) -> int:
    """Build what is missing; print the tag and where the trees are. Exit 0, or 2 (errors)."""
    p = argparse.ArgumentParser(prog="reconverge build kind-node")
    p.add_argument("--rootfs-only", action="store_true", help="only the debootstrap base")
    p.add_argument("--check", action="store_true", help="build nothing; exit 1 when stale")
    args = p.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731 - a one-line sink
    if args.check:
        image = node_image.cached()
        if image is None:
            print(f"kind-node: not built ({node_image.missing() or 'stale'})")
            return 1
        print(f"kind-node: {image.tag} (cached)")
        return 0
    t0 = time.monotonic()
    if args.rootfs_only:
        base = rootfs.ensure(log=log)
        print(f"kind-node: rootfs {base.path} ({time.monotonic() - t0:.1f} s)")
        return 0
    image = node_image.ensure(log=log)
    print(f"kind-node: {image.tag} ready in {time.monotonic() - t0:.1f} s")
    for tree in image.trees:
        print(f"  {tree}")
    return 0
