"""Which containerd a matrix label means, and getting each one built once.

A label is either the system's containerd (Debian's ``1.6.20``, the harness's default) or
a ``github.com/containerd/containerd/v2`` tag built into the cache from the module proxy
(``harness.build``). Why check the proxy before building: a tag it does not serve fails
deep inside ``go mod download``; asking once up front gives one line naming the served
tags instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from functools import lru_cache

from harness import binaries
from harness.errors import ReconvergeError
from harness.matrix import tags


def parse_list(text: str) -> list[str]:
    """``"1.6.20, v2.1.4,v2.1.5"`` -> labels in the order given (duplicates dropped)."""
    out: list[str] = []
    for raw in text.split(","):
        label = raw.strip()
        if not label:
            continue
        tags.parse(label)  # one clear error for a typo
        if not any(tags.parse(label).key == tags.parse(o).key for o in out):
            out.append(label)
    if not out:
        raise ReconvergeError(
            "no containerd version given", fix="e.g. --reconverge-containerd=1.6.20,v2.1.5"
        )
    return out


@lru_cache(maxsize=1)
def system_version() -> str | None:
    """The system containerd's version (``1.6.20``), or None when there is none."""
    found = binaries.locate("containerd")
    if found is None:
        return None
    try:
        out = subprocess.run(
            [str(found.path), "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\s(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def is_system(label: str) -> bool:
    """Does ``label`` name the system containerd (the session default) rather than a build?"""
    if tags.parse(label).major >= 2:
        return False
    sys_v = system_version()
    if sys_v is None or tags.parse(label).key != tags.parse(sys_v).key:
        raise ReconvergeError(
            f"containerd {label} is not available: 1.x releases are not built from the module "
            f"proxy ({tags.MODULE} starts at 2.0), and the system containerd is "
            f"{sys_v or 'not installed'}",
            fix="use the system's version for 1.x, or a v2 tag",
        )
    return True


def build_version(label: str) -> str | None:
    """The ``version=`` the provider takes: None for the system containerd, else the tag."""
    return None if is_system(label) else label


def missing(labels: list[str]) -> list[str]:
    """The v2 labels not in the build cache yet."""
    from harness.build import cache

    return [v for v in labels if not is_system(v) and cache.locate("containerd", v) is None]


def ensure(labels: list[str], *, log: Callable[[str], None] | None = None) -> None:
    """Build every v2 label that is not cached, one at a time, with the build heartbeat.

    The served tags are listed once; a label the proxy does not serve is one error before
    anything is built. Builds share the Go module and build caches (harness.build).
    """
    from harness.build import recipes

    out = log or (lambda s: print(f"matrix: {s}", file=sys.stderr, flush=True))
    todo = missing(labels)
    if not todo:
        return
    served = tags.proxy_tags()
    unserved = [v for v in todo if v not in served]
    if unserved:
        newest = ", ".join(tags.ordered(served)[-6:])
        raise ReconvergeError(
            f"the module proxy does not serve {tags.MODULE} {', '.join(unserved)}",
            fix=f"pick served tags (newest releases: {newest})",
        )
    for k, v in enumerate(todo, 1):
        out(f"building containerd {v} ({k}/{len(todo)}) into the cache")
        recipes.ensure("containerd", v, log=lambda s: out(s), step=(k, len(todo)))
