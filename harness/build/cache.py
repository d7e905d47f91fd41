"""Cache layout, manifests and look-ups (no ``go`` invocation on this path)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def root() -> Path:
    """``$RECONVERGE_CACHE`` or ``~/.cache/reconverge``."""
    env = os.environ.get("RECONVERGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reconverge"


def arch() -> str:
    """GOARCH of this machine."""
    return _ARCH


def entry_dir(component: str, version: str, go_version: str) -> Path:
    """Where one build of (component, version, go version, arch) lives."""
    return root() / "bin" / component / f"{version}-{go_version}-{arch()}"


def _entries(component: str, version: str | None) -> list[Path]:
    base = root() / "bin" / component
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        if not (d / "manifest.json").is_file() or not d.name.endswith(f"-{arch()}"):
            continue
        if version is None or d.name.startswith(f"{version}-go"):
            out.append(d)
    return sorted(out, key=lambda d: (d / "manifest.json").stat().st_mtime, reverse=True)


def manifest(component: str, version: str | None = None) -> dict[str, Any] | None:
    """The newest manifest for ``component`` (at ``version``, or its default version)."""
    if version is None:
        from harness.build.components import DEFAULTS

        version = DEFAULTS.get(component)
    for d in _entries(component, version):
        try:
            data = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        data["dir"] = str(d)
        return data
    return None


def _owner(component: str, version: str | None) -> tuple[dict[str, Any], str] | None:
    """(manifest, binary name) that provides ``component``: its own entry, else its bundle's."""
    m = manifest(component, version)
    if m:
        return m, m["main"]
    from harness.build.components import BUNDLED, DEFAULTS

    bundle = BUNDLED.get(component)
    if bundle is None:
        return None
    m = manifest(bundle, version or DEFAULTS.get(component))
    if m and component in (m.get("binaries") or {}):
        return m, component
    return None


def locate(component: str, version: str | None = None) -> Path | None:
    """Path of the component's main binary in the cache, or None.

    A bundle member (``kube-apiserver``) is found in its own older entry or in the bundle
    (``kubernetes``) at the same version.
    """
    found = _owner(component, version)
    if found is None:
        return None
    path = Path(found[0]["dir"]) / found[1]
    return path if path.is_file() else None


def binaries_dir(component: str, version: str | None = None) -> Path | None:
    """The cache entry directory holding ``component``'s binaries, or None.

    For the Kubernetes bundle this is the directory with all seven commands
    (``binaries_dir("kubernetes") / "kubelet"``); a member's name gives the same directory.
    """
    path = locate(component, version)
    return path.parent if path is not None else None


def cached() -> list[dict[str, Any]]:
    """Every cache entry's manifest (for ``reconverge doctor``)."""
    out = []
    base = root() / "bin"
    if not base.is_dir():
        return out
    for comp in sorted(base.iterdir()):
        for d in _entries(comp.name, None):
            try:
                data = json.loads((d / "manifest.json").read_text())
            except (OSError, ValueError):
                continue
            data["dir"] = str(d)
            out.append(data)
    return out
