"""``reconverge doctor``: which component a run would use, from where, at which version.

Why a table rather than a check list: someone reproducing a bug needs to know *which*
containerd or toxiproxy produced a verdict, and CI needs one exit code that says whether
the embedded defaults can run at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from harness import binaries

FIX = "./ci/bootstrap"


@dataclass
class Row:
    """One line of the doctor table."""

    component: str
    status: str  # "ok", "missing", "fallback", "optional"
    version: str
    path: str
    backend: str
    required: bool

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "fallback")


def _binary_row(component: str, *, backend: str, required: bool) -> Row:
    found = binaries.locate(component)
    if found is None:
        return Row(component, "missing", "-", "-", backend, required)
    version = binaries.version_of(component, found.path)
    if component == "toxiproxy":
        version = _toxiproxy_version(version)
    return Row(component, "ok", version, f"{found.path} ({found.source})", backend, required)


def _toxiproxy_version(reported: str) -> str:
    """Prefer the cache manifest's version when the binary was built without ldflags."""
    if reported and reported not in ("git", "undefined"):
        return reported
    try:
        from harness import build

        m = build.manifest("toxiproxy")
        if m:
            return f"{m.get('version')} (manifest)"
    except Exception:
        pass
    return reported


def _docker_row() -> Row:
    docker = binaries.locate("docker")
    dockerd = binaries.locate("dockerd")
    if docker is None or dockerd is None:
        return Row("docker", "missing", "-", "-", "toxiproxy container backend, kind", False)
    version = binaries.version_of("dockerd", dockerd.path)
    running = _docker_running()
    state = "daemon running" if running else "daemon started on demand"
    return Row(
        "docker", "ok", version, f"{dockerd.path} ({state})", "toxiproxy container, kind", False
    )


def _runtime_row() -> Row:
    """The capability-dropping OCI runtime the harness's dockerd runs containers with."""
    from harness.errors import ReconvergeError
    from harness.providers import docker

    try:
        path = docker.runtime_path()
    except ReconvergeError as exc:
        return Row(docker.RUNTIME, "missing", "-", "-", f"kind ({exc.fix})", False)
    runc = binaries.locate("runc")
    over = f"over {runc.path}" if runc else "runc missing"
    return Row(docker.RUNTIME, "ok", "-", f"{path} ({over})", "dockerd default runtime", False)


def _docker_running() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        out = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=3,
            check=False,
            env={**os.environ},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def _cache_rows() -> list[Row]:
    """Extra entries of the Go build cache (e.g. containerd 2.x, etcd 3.6, kube-apiserver)."""
    try:
        from harness import build
    except ImportError:
        return []
    rows = []
    try:
        entries = build.cached()
    except Exception:
        return []
    for m in entries:
        comp = str(m.get("component"))
        if comp in ("toxiproxy", "etcd", "kube-apiserver"):
            continue  # shown by their own rows
        binaries = m.get("binaries") or {}
        names = ",".join(binaries) if isinstance(binaries, dict) else ""
        paths = f"{m.get('dir', '-')}/{{{names}}}" if names else str(m.get("dir", "-"))
        rows.append(Row(f"{comp} (cache)", "ok", str(m.get("version")), str(paths), "built", False))
    return rows


def rows() -> list[Row]:
    """Every component the harness knows, required ones first."""
    out = [
        _binary_row("toxiproxy", backend="process (embedded default)", required=True),
        _binary_row("containerd", backend="process (embedded default)", required=True),
        _binary_row("ctr", backend="repro by hand", required=True),
        _binary_row("runc", backend="runc peer in ci/bench", required=True),
        _binary_row("socat", backend="unix<->tcp relays", required=True),
        _docker_row(),
        _runtime_row(),
    ]
    out += _kube_rows()
    out += _cache_rows()
    return out


def _kube_rows() -> list[Row]:
    """kube-apiserver, etcd and the Kubernetes backend a run would use (required: the
    claim-operator suites run on the embedded ``local`` backend by default)."""
    try:
        from harness.providers import kube
    except ImportError:
        return []
    try:
        described = kube.describe()
    except Exception as exc:  # a broken kubeconfig must not hide the rest of the table
        return [Row("kube backend", "missing", "-", "-", f"error: {exc}", True)]
    required = {"kube-apiserver", "etcd", "kube backend"}
    return [
        Row(
            d["component"],
            d["status"],
            d["version"],
            d["path"],
            d["backend"],
            d["component"] in required,
        )
        for d in described
    ]


def render(table: list[Row]) -> str:
    """The doctor table as text."""
    head = ("component", "status", "version", "backend", "path")
    data = [
        (
            r.component,
            r.status if r.required or r.usable else "optional",
            r.version,
            r.backend,
            r.path,
        )
        for r in table
    ]
    widths = [max(len(str(row[i])) for row in [head, *data]) for i in range(len(head))]
    widths[-1] = 0
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("-" * (sum(widths[:-1]) + 2 * (len(head) - 1) + 40))
    for row in data:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def main() -> int:
    """Print the table; exit 0 when every required component is usable, else 2."""
    table = rows()
    print(render(table))
    missing = [r.component for r in table if r.required and not r.usable]
    if missing:
        print(f"\nnot usable: {', '.join(missing)} — run {FIX}")
        return 2
    print("\nall embedded defaults usable")
    return 0
