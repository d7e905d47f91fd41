"""Finding the executables of real components: build cache first, then Debian's packages.

Why one place: providers, ``doctor`` and the error messages must agree on which binary a
run would use, and a missing one must produce the same single actionable line everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import MissingBinary

# component -> (env override, cache component name or None, PATH names)
_SOURCES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "toxiproxy": ("RECONVERGE_TOXIPROXY_BIN", "toxiproxy", ("toxiproxy-server",)),
    "containerd": ("RECONVERGE_CONTAINERD_BIN", "containerd", ("containerd",)),
    "ctr": ("RECONVERGE_CTR_BIN", None, ("ctr",)),
    "runc": ("RECONVERGE_RUNC_BIN", None, ("runc",)),
    "socat": ("RECONVERGE_SOCAT_BIN", None, ("socat",)),
    "dockerd": ("RECONVERGE_DOCKERD_BIN", None, ("dockerd",)),
    "docker": ("RECONVERGE_DOCKER_BIN", None, ("docker",)),
    "etcd": ("RECONVERGE_ETCD_BIN", "etcd", ("etcd",)),
    "kube-apiserver": ("RECONVERGE_KUBE_APISERVER_BIN", "kube-apiserver", ("kube-apiserver",)),
    "busybox": ("RECONVERGE_BUSYBOX_BIN", None, ("busybox",)),
}

# Cached builds of these are used only when a version is asked for: the default stays
# Debian's (containerd 1.6.20), a 2.x build is chosen explicitly (``version="v2.1.5"``).
_PINNED_ONLY = frozenset({"containerd"})

_VERSION_ARGS: dict[str, list[str]] = {
    "toxiproxy": ["-version"],
    "containerd": ["--version"],
    "ctr": ["--version"],
    "runc": ["--version"],
    "socat": ["-V"],
    "dockerd": ["--version"],
    "docker": ["--version"],
    "etcd": ["--version"],
    "kube-apiserver": ["--version"],
    "busybox": ["--help"],
}


@dataclass(frozen=True)
class Found:
    """Where a component's binary is and how it was found."""

    component: str
    path: Path
    source: str  # "env", "cache", "PATH"


def _cache_locate(name: str, version: str | None) -> Path | None:
    try:
        from harness import build
    except ImportError:
        return None
    try:
        return build.locate(name, version)
    except Exception:
        return None


def locate(component: str, version: str | None = None) -> Found | None:
    """The binary a run would use for ``component`` (or None).

    Raises:
        ValueError: ``component`` is not one the harness knows (a programming error).
    """
    if component not in _SOURCES:
        raise ValueError(f"unknown component {component!r}; known: {', '.join(sorted(_SOURCES))}")
    env_var, cache_name, path_names = _SOURCES[component]
    override = os.environ.get(env_var)
    if override:
        p = Path(override)
        return Found(component, p, "env") if p.exists() else None
    if cache_name and (version is not None or component not in _PINNED_ONLY):
        p = _cache_locate(cache_name, version)
        if p is not None and p.exists():
            return Found(component, p, "cache")
    if version is None:
        for n in path_names:
            w = shutil.which(n)
            if w:
                return Found(component, Path(w), "PATH")
    return None


def require(component: str, version: str | None = None) -> Path:
    """Like :func:`locate` but raises the one-line error with its fix.

    Raises:
        MissingBinary: not in the cache and not on PATH.
    """
    found = locate(component, version)
    if found is None:
        what = f"{component}@{version}" if version else component
        raise MissingBinary(what)
    return found.path


def version_of(component: str, path: Path) -> str:
    """First meaningful line of ``<binary> --version`` (or the reason it failed)."""
    try:
        out = subprocess.run(
            [str(path), *_VERSION_ARGS.get(component, ["--version"])],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unusable: {exc}"
    text = (out.stdout + "\n" + out.stderr).strip()
    match = _VERSION_RE.search(text)
    if match:
        return match.group(0).rstrip(",")
    lines = text.splitlines()
    return lines[0].strip() if lines else f"exit {out.returncode}"


# The first version-looking token: 1.6.20~ds1, v1.34.4, 20.10.24+dfsg1, 3.4.23.
_VERSION_RE = re.compile(r"\bv?\d+\.\d+(?:\.\d+)*(?:[~+-][\w.~+-]*)?")
