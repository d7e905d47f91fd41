"""``reconverge doctor``: which component a run would use, from where, at which version.

Why a table rather than a check list: someone reproducing a bug needs to know *which*
containerd or toxiproxy produced a verdict, and CI needs one exit code that says whether
the embedded defaults can run at all. ``--json`` gives the same rows to a machine (a CI
step, a wheel test) without parsing a table whose column widths change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from harness import binaries

FIX = "./ci/bootstrap"
ROOT_FIX = "run as root: sudo -E .venv/bin/reconverge … and sudo -E .venv/bin/pytest …"
JSON_SCHEMA = 1


@dataclass
class Row:
    """One line of the doctor table."""

    component: str
    status: str  # "ok", "missing", "fallback", "optional", "not root"
    version: str
    path: str
    backend: str
    required: bool
    source: str = ""  # how the binary was found: "env", "cache", "PATH" ("" when none)
    reason: str = ""  # why it is not usable (or only a fallback); "" when fine
    fix: str = ""  # what makes it usable when that is not FIX ("" otherwise)

    @property
    def usable(self) -> bool:
        return self.status in ("ok", "fallback")

    def shown_path(self) -> str:
        """The table's path column: the path, then how it was found."""
        return f"{self.path} ({self.source})" if self.source else self.path

    def to_dict(self) -> dict[str, object]:
        """The row as ``doctor --json`` prints it (every field always present)."""
        return {
            "component": self.component,
            "status": self.status,
            "usable": self.usable,
            "required": self.required,
            "version": self.version,
            "path": self.path,
            "source": self.source,
            "backend": self.backend,
            "reason": self.reason or None,
            "fix": self.fix or (None if self.usable else FIX),
        }


def root_row() -> Row:
    """Does this process run as root? Required: containerd, mounts and cgroups need it.

    Why a row rather than an early exit: a non-root user should still see which binaries
    are there, and the fix (run as root) is different from every other row's.
    """
    euid = os.geteuid()
    if euid == 0:
        return Row("root", "ok", "-", "euid 0", "containerd, mounts, cgroups", True)
    return Row(
        "root",
        "not root",
        "-",
        f"euid {euid}",
        "containerd, mounts, cgroups",
        True,
        reason=f"running as euid {euid}: containerd, mounts and cgroups need root",
        fix=ROOT_FIX,
    )


def _binary_row(component: str, *, backend: str, required: bool) -> Row:
    found = binaries.locate(component)
    if found is None:
        why = "not found (env override, build cache, PATH)"
        return Row(component, "missing", "-", "-", backend, required, reason=why)
    version = binaries.version_of(component, found.path)
    if component == "toxiproxy":
        version = _toxiproxy_version(version)
    return Row(component, "ok", version, str(found.path), backend, required, source=found.source)


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
    backend = "toxiproxy container backend, kind"
    if docker is None or dockerd is None:
        why = "docker or dockerd not found (env override, PATH)"
        return Row("docker", "missing", "-", "-", backend, False, reason=why)
    version = binaries.version_of("dockerd", dockerd.path)
    running = _docker_running()
    state = "daemon running" if running else "daemon started on demand"
    return Row(
        "docker", "ok", version, str(dockerd.path), f"{backend}; {state}", False, dockerd.source
    )


def _runtime_row() -> Row:
    """The capability-dropping OCI runtime the harness's dockerd runs containers with."""
    from harness.errors import ReconvergeError
    from harness.providers import docker

    try:
        path = docker.runtime_path()
    except ReconvergeError as exc:
        return Row(
            docker.RUNTIME,
            "missing",
            "-",
            "-",
            "kind",
            False,
            reason=exc.message,
            fix=exc.fix or "",
        )
    runc = binaries.locate("runc")
    over = f"over {runc.path}" if runc else "runc missing"
    return Row(docker.RUNTIME, "ok", "-", str(path), f"dockerd default runtime {over}", False)


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
        names = ", ".join(binaries) if isinstance(binaries, dict) else ""
        built = f"built: {names}" if names else "built"
        version, where = str(m.get("version")), str(m.get("dir", "-"))
        rows.append(Row(f"{comp} (cache)", "ok", version, where, built, False, "cache"))
    return rows


def rows() -> list[Row]:
    """Every component the harness knows, required ones first (root before binaries)."""
    out = [
        root_row(),
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
    except ModuleNotFoundError as exc:  # a wheel installed without the kube extra
        return [
            Row(
                "kube backend",
                "missing",
                "-",
                "-",
                f"error: {exc}",
                True,
                reason=str(exc),
                fix="pip install 'reconverge[kube]'",
            )
        ]
    except Exception as exc:  # a broken kubeconfig must not hide the rest of the table
        return [Row("kube backend", "missing", "-", "-", f"error: {exc}", True, reason=str(exc))]
    required = {"kube-apiserver", "etcd", "kube backend"}
    return [_kube_row(d, d["component"] in required) for d in described]


_SOURCE_SUFFIX = re.compile(r"^(?P<path>.*) \((?P<source>env|cache|PATH)\)$")


def _kube_row(d: dict[str, str], required: bool) -> Row:
    """A ``kube.describe`` row; its path may end in `` (cache)``, split off as the source."""
    path, source = d["path"], ""
    m = _SOURCE_SUFFIX.match(path)
    if m:
        path, source = m["path"], m["source"]
    reason = "" if d["status"] == "ok" else d["backend"]
    return Row(
        d["component"], d["status"], d["version"], path, d["backend"], required, source, reason
    )


def render(table: list[Row]) -> str:
    """The doctor table as text."""
    head = ("component", "status", "version", "backend", "path")
    data = [
        (
            r.component,
            r.status if r.required or r.usable else "optional",
            r.version,
            r.backend,
            r.shown_path(),
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


def exit_code(table: list[Row]) -> int:
    """0 when every required component is usable, else 2 (the environment is wrong)."""
    return 2 if any(r.required and not r.usable for r in table) else 0


def to_json(table: list[Row]) -> str:
    """``doctor --json``: the rows, the exit code and what is not usable, as one document."""
    code = exit_code(table)
    doc = {
        "schema": JSON_SCHEMA,
        "ok": code == 0,
        "exit_code": code,
        "not_usable": [r.component for r in table if r.required and not r.usable],
        "components": [r.to_dict() for r in table],
    }
    return json.dumps(doc, indent=2)


def _fix_lines(table: list[Row]) -> list[str]:
    """One ``not usable: a, b — run <fix>`` line per distinct fix, in table order."""
    by_fix: dict[str, list[str]] = {}
    for r in table:
        if r.required and not r.usable:
            named = f"{r.component} ({r.reason})" if r.fix and r.reason else r.component
            by_fix.setdefault(r.fix or FIX, []).append(named)
    return [f"not usable: {', '.join(comps)} — {_verb(fix)}" for fix, comps in by_fix.items()]


def _verb(fix: str) -> str:
    return fix if fix.startswith("run ") else f"run {fix}"


def main(*, as_json: bool = False) -> int:
    """Print the table (or ``--json``); exit 0 when every required component is usable, else 2."""
    table = rows()
    code = exit_code(table)
    if as_json:
        print(to_json(table))
        return code
    print(render(table))
    if code:
        print("")
        for line in _fix_lines(table):
            print(line)
        return code
    print("\nall embedded defaults usable")
    return 0
