"""How each third-party server is built from the Go module proxy.

Most of these modules cannot be ``go install``-ed directly: k8s.io/kubernetes pins its
staging modules at ``v0.0.0`` with ``replace => ./staging/...``, etcd's server module
replaces its siblings, and containerd 2.x carries ``exclude`` directives. So each is built
from a throw-away *wrapper module* in the cache (never in the repository) whose go.mod is
derived from the target's own go.mod — the staging replace list is read from the tag,
not hard-coded, so a new Kubernetes minor needs no code change.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.build import cache
from harness.errors import ReconvergeError

DEFAULTS: dict[str, str] = {
    "toxiproxy": "v2.12.0",
    "etcd": "v3.6.16",
    "kube-apiserver": "v1.34.4",
    "kube-controller-manager": "v1.34.4",
    "containerd": "v2.1.5",
    "kind": "v0.32.0",
    "kwok": "v0.8.0",
}

# What ci/bootstrap builds when asked for "the defaults".
DEFAULT_SET: tuple[str, ...] = (
    "toxiproxy",
    "etcd",
    "kube-apiserver",
    "containerd@v2.1.4",
    "containerd@v2.1.5",
)


class BuildFailed(ReconvergeError):
    """A Go build failed; the message names the log with the full output."""


@dataclass
class Context:
    """One build: where it writes, how it runs ``go``, what it records."""

    component: str
    version: str
    out: Path
    log: Path
    go_version: str
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def go(self, *args: str, cwd: Path) -> str:
        """Run ``nice go <args>``; output goes to the log; failure raises one line."""
        cmd = ["nice", "-n", "10", "go", *args]
        with open(self.log, "a") as log:
            log.write(f"$ (cd {cwd}) {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.run(
                cmd,
                cwd=cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            log.write(proc.stdout)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            last = lines[-1].strip() if lines else f"exit {proc.returncode}"
            raise BuildFailed(
                f"cannot build {self.component}@{self.version}: {last} (log: {self.log})"
            )
        return proc.stdout


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        GOFLAGS="-buildvcs=false -p=2",
        GOPROXY=env.get("GOPROXY") or "https://proxy.golang.org",
    )
    if env["GOPROXY"].endswith(",direct"):  # no VCS access on these machines
        env["GOPROXY"] = env["GOPROXY"][: -len(",direct")]
    return env


def _go_version() -> str:
    try:
        out = subprocess.run(
            ["go", "env", "GOVERSION"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ReconvergeError(
            f"Go toolchain unavailable ({exc}); it is needed to build third-party servers",
            fix="install Go 1.24+ and re-run ./ci/bootstrap",
        ) from None
    return out.stdout.strip()


def _gomod_of(ctx: Context, module: str, version: str) -> str:
    out = ctx.go("mod", "download", "-json", f"{module}@{version}", cwd=ctx.out)
    return Path(json.loads(out)["GoMod"]).read_text()


def staging_replaces(gomod: str, k8s_version: str) -> list[str]:
    """``replace`` lines for every k8s.io module the tag requires at v0.0.0.

    ``k8s_version`` is ``v1.34.4``; staging modules are tagged ``v0.34.4``.
    """
    staging_version = "v0." + k8s_version.removeprefix("v1.")
    mods = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+v0\.0\.0\s*$", gomod, re.M)))
    return [f"replace {m} => {m} {staging_version}" for m in mods]


def carried_directives(gomod: str) -> list[str]:
    """``godebug`` and ``exclude`` directives a wrapper must copy to build like upstream."""
    out = [ln for ln in gomod.splitlines() if ln.startswith("godebug ")]
    for block in re.findall(r"^exclude \((.*?)^\)", gomod, re.M | re.S):
        out.append("exclude (\n" + block.rstrip() + "\n)")
    out += [ln for ln in gomod.splitlines() if re.match(r"^exclude [^(\s]", ln)]
    return out


def ldflags(pairs: dict[str, str]) -> str:
    """``-X key=value`` flags, with ``-s -w`` to keep binaries small."""
    return " ".join(["-s", "-w", *(f"-X {k}={v}" for k, v in pairs.items())])


def _wrapper(
    ctx: Context, name: str, require: str, version: str, lines: list[str], tool_pkgs: list[str]
) -> Path:
    src = cache.root() / "src" / f"{name}-{version}"
    src.mkdir(parents=True, exist_ok=True)
    gomod = [f"module reconverge.local/{name}", "", "go 1.24.0", "", f"require {require} {version}"]
    gomod += ["", *lines]
    (src / "go.mod").write_text("\n".join(gomod) + "\n")
    imports = "\n".join(f'\t_ "{p}"' for p in tool_pkgs)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
    ctx.go("mod", "tidy", cwd=src)
    return src


# -- recipes -------------------------------------------------------------------------------


def _toxiproxy(ctx: Context) -> None:
    env = dict(ctx.env, GOBIN=str(ctx.out))
    flags = ldflags({"github.com/Shopify/toxiproxy/v2.Version": ctx.version})
    for pkg, name in (("server", "toxiproxy-server"), ("cli", "toxiproxy-cli")):
        saved = ctx.env
        ctx.env = env
        try:
            ctx.go(
                "install",
                "-trimpath",
                f"-ldflags={flags}",
                f"github.com/Shopify/toxiproxy/v2/cmd/{pkg}@{ctx.version}",
                cwd=ctx.out,
            )
        finally:
            ctx.env = saved
        os.replace(ctx.out / pkg, ctx.out / name)


def _etcd(ctx: Context) -> None:
    mod = "go.etcd.io/etcd/server/v3"
    src = _wrapper(ctx, "etcd", mod, ctx.version, [], [mod])
    ctx.go("build", "-trimpath", "-ldflags=-s -w", "-o", str(ctx.out / "etcd"), mod, cwd=src)


def _kube(binary: str) -> Callable[[Context], None]:
    def build(ctx: Context) -> None:
        gomod = _gomod_of(ctx, "k8s.io/kubernetes", ctx.version)
        lines = carried_directives(gomod) + staging_replaces(gomod, ctx.version)
        pkg = f"k8s.io/kubernetes/cmd/{binary}"
        src = _wrapper(ctx, "kubebin", "k8s.io/kubernetes", ctx.version, lines, [pkg])
        major, minor = ctx.version.removeprefix("v").split(".")[:2]
        date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pairs: dict[str, str] = {}
        for p in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            pairs.update(
                {
                    f"{p}.gitVersion": ctx.version,
                    f"{p}.gitMajor": major,
                    f"{p}.gitMinor": minor,
                    f"{p}.gitTreeState": "clean",
                    f"{p}.buildDate": date,
                }
            )
        ctx.go(
            "build",
            "-trimpath",
            f"-ldflags={ldflags(pairs)}",
            "-o",
            str(ctx.out / binary),
            pkg,
            cwd=src,
        )
        ctx.extra["staging_replaces"] = len(lines)

    return build


def _containerd(ctx: Context) -> None:
    mod = "github.com/containerd/containerd/v2"
    gomod = _gomod_of(ctx, mod, ctx.version)
    cmds = [f"{mod}/cmd/containerd", f"{mod}/cmd/ctr", f"{mod}/cmd/containerd-shim-runc-v2"]
    src = _wrapper(ctx, "containerd", mod, ctx.version, carried_directives(gomod), cmds)
    flags = ldflags({f"{mod}/version.Version": ctx.version, f"{mod}/version.Revision": "proxy"})
    for pkg in cmds:
        ctx.go(
            "build",
            "-trimpath",
            "-tags=no_btrfs",
            f"-ldflags={flags}",
            "-o",
            str(ctx.out / pkg.rsplit("/", 1)[1]),
            pkg,
            cwd=src,
        )


def _plain_install(pkg: str, binary: str) -> Callable[[Context], None]:
    def build(ctx: Context) -> None:
        saved = ctx.env
        ctx.env = dict(ctx.env, GOBIN=str(ctx.out))
        try:
            ctx.go("install", "-trimpath", f"{pkg}@{ctx.version}", cwd=ctx.out)
        finally:
            ctx.env = saved
        if not (ctx.out / binary).exists():
            raise BuildFailed(f"{pkg} built no {binary}")

    return build


@dataclass(frozen=True)
class Recipe:
    """How to build one component; ``binaries[0]`` is the one ``locate`` returns."""

    binaries: tuple[str, ...]
    build: Callable[[Context], None]


RECIPES: dict[str, Recipe] = {
    "toxiproxy": Recipe(("toxiproxy-server", "toxiproxy-cli"), _toxiproxy),
    "etcd": Recipe(("etcd",), _etcd),
    "kube-apiserver": Recipe(("kube-apiserver",), _kube("kube-apiserver")),
    "kube-controller-manager": Recipe(
        ("kube-controller-manager",), _kube("kube-controller-manager")
    ),
    "containerd": Recipe(("containerd", "ctr", "containerd-shim-runc-v2"), _containerd),
    "kind": Recipe(("kind",), _plain_install("sigs.k8s.io/kind", "kind")),
    "kwok": Recipe(("kwok",), _plain_install("sigs.k8s.io/kwok/cmd/kwok", "kwok")),
}


def parse_spec(spec: str) -> tuple[str, str]:
    """``containerd@v2.1.5`` -> (component, version); the default version when omitted."""
    component, _, version = spec.partition("@")
    if component not in RECIPES:
        raise ReconvergeError(
            f"unknown component {component!r}; known: {', '.join(sorted(RECIPES))}"
        )
    return component, version or DEFAULTS[component]


def ensure(
    component: str, version: str | None = None, *, log: Callable[[str], None] = print
) -> Path:
    """The cached binary, building it first when it is missing.

    Raises:
        BuildFailed: ``go`` failed (one line; the full output is in the named log file).
    """
    version = version or DEFAULTS[component]
    hit = cache.locate(component, version)
    if hit is not None:
        log(f"{component} {version}: cached ({hit.parent})")
        return hit
    recipe = RECIPES[component]
    go_version = _go_version()
    final = cache.entry_dir(component, version, go_version)
    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f".{final.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent ensure waits, then hits
        hit = cache.locate(component, version)
        if hit is not None:
            return hit
        logs = cache.root() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        ctx = Context(
            component, version, tmp, logs / f"{component}-{version}.log", go_version, env=_go_env()
        )
        ctx.log.write_text("")
        log(f"{component} {version}: building with {go_version} (log {ctx.log})")
        t0 = time.monotonic()
        try:
            recipe.build(ctx)
            seconds = round(time.monotonic() - t0, 1)
            m = {
                "component": component,
                "version": version,
                "go": go_version,
                "arch": cache.arch(),
                "main": recipe.binaries[0],
                "binaries": {b: str(final / b) for b in recipe.binaries if (tmp / b).exists()},
                "sha256": {
                    b: hashlib.sha256((tmp / b).read_bytes()).hexdigest()
                    for b in recipe.binaries
                    if (tmp / b).exists()
                },
                "build_seconds": seconds,
                "built_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                **ctx.extra,
            }
            (tmp / "manifest.json").write_text(json.dumps(m, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log(f"built {component} {version} in {seconds:.0f} s")
    return final / recipe.binaries[0]
