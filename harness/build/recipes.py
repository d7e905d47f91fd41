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
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.build import cache, pause, progress
from harness.build.components import BUNDLED, DEFAULTS, KUBERNETES_BINARIES
from harness.errors import ReconvergeError


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

    compiled: int = 0  # packages ``go build -v`` has named so far (read by the heartbeat)

    def go(self, *args: str, cwd: Path) -> str:
        """Run ``nice go <args>``; output goes to the log; failure raises one line.

        Output is read line by line (not ``subprocess.run``) so the log fills as ``go``
        works and :attr:`compiled` counts ``-v`` package lines for the heartbeat thread.
        """
        cmd = ["nice", "-n", "10", "go", *args]
        counting = args[0] in ("build", "install") and "-v" in args
        lines: list[str] = []
        with open(self.log, "a") as log:
            log.write(f"$ (cd {cwd}) {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    lines.append(line)
                    if counting and _PKG_LINE.match(line):
                        self.compiled += 1
                returncode = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if returncode != 0:
            text = [ln for ln in lines if ln.strip()]
            last = text[-1].strip() if text else f"exit {returncode}"
            raise BuildFailed(
                f"cannot build {self.component}@{self.version}: {last} (log: {self.log})"
            )
        return "".join(lines)


# what ``go build -v`` prints per package: an import path alone on its line
_PKG_LINE = re.compile(r"^[\w.\-]+(/[\w.\-~+]+)*\n?$")


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
                "-v",
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
    out = str(ctx.out / "etcd")
    ctx.go("build", "-v", "-trimpath", "-ldflags=-s -w", "-o", out, mod, cwd=src)


def kube_version_ldflags(version: str, build_date: str) -> dict[str, str]:
    """The ``-X`` pairs Kubernetes' own hack/lib/version.sh sets, for both version packages.

    Without them every binary reports ``v0.0.0-master`` and kubeadm's version-skew logic
    falls back to a placeholder (docs: kind-node-contract §8).
    """
    major, minor = version.removeprefix("v").split(".")[:2]
    pairs: dict[str, str] = {}
    for p in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        pairs.update(
            {
                f"{p}.gitVersion": version,
                f"{p}.gitMajor": major,
                f"{p}.gitMinor": minor,
                f"{p}.gitTreeState": "clean",
                f"{p}.buildDate": build_date,
            }
        )
    return pairs


def build_many_args(out: Path, pkgs: list[str], flags: str) -> list[str]:
    """``go build`` arguments that build every package in ONE invocation into ``out/``.

    One invocation shares the package graph (compiled once, linked per command) and lets
    ``-p`` interleave the links; ``-o dir/`` (trailing slash) names each binary after its
    package's last element.
    """
    return ["build", "-v", "-trimpath", f"-ldflags={flags}", "-o", f"{out}/", *pkgs]


def _kubernetes(ctx: Context) -> None:
    gomod = _gomod_of(ctx, "k8s.io/kubernetes", ctx.version)
    lines = carried_directives(gomod) + staging_replaces(gomod, ctx.version)
    pkgs = [f"k8s.io/kubernetes/cmd/{b}" for b in KUBERNETES_BINARIES]
    src = _wrapper(ctx, "kubernetes", "k8s.io/kubernetes", ctx.version, lines, pkgs)
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flags = ldflags(kube_version_ldflags(ctx.version, date))
    ctx.go(*build_many_args(ctx.out, pkgs, flags), cwd=src)
    ctx.extra["staging_replaces"] = len(lines)
    ctx.extra["build_date"] = date


def _containerd(ctx: Context) -> None:
    mod = "github.com/containerd/containerd/v2"
    gomod = _gomod_of(ctx, mod, ctx.version)
    cmds = [f"{mod}/cmd/containerd", f"{mod}/cmd/ctr", f"{mod}/cmd/containerd-shim-runc-v2"]
    src = _wrapper(ctx, "containerd", mod, ctx.version, carried_directives(gomod), cmds)
    flags = ldflags({f"{mod}/version.Version": ctx.version, f"{mod}/version.Revision": "proxy"})
    for pkg in cmds:
        ctx.go(
            "build",
            "-v",
            "-trimpath",
            "-tags=no_btrfs",
            f"-ldflags={flags}",
            "-o",
            str(ctx.out / pkg.rsplit("/", 1)[1]),
            pkg,
            cwd=src,
        )


# CoreDNS plugins left out of our build: cloud DNS back ends that need credentials and a
# network (route53, azure, clouddns), etcd-backed zones and tracing exporters. They pull
# the AWS, Azure and Google SDKs, etcd's client and Datadog/Zipkin: a third of the ~1,060
# packages of a full build, for nothing a kind cluster's Corefile uses.
COREDNS_EXCLUDED: frozenset[str] = frozenset({"route53", "azure", "clouddns", "etcd", "trace"})


def coredns_main(plugin_cfg: str, excluded: frozenset[str] = COREDNS_EXCLUDED) -> str:
    """``main.go`` of a CoreDNS with every plugin of ``plugin.cfg`` except ``excluded``.

    The plugin list is the tag's own plugin.cfg (``name:package`` lines), so a new
    release's plugins come along; order is irrelevant here (``dnsserver.Directives``, the
    execution order, stays the release's generated one).
    """
    imports = []
    for line in plugin_cfg.splitlines():
        name, sep, pkg = line.strip().partition(":")
        if not sep or line.lstrip().startswith("#") or name in excluded:
            continue
        path = pkg if "/" in pkg else f"github.com/coredns/coredns/plugin/{pkg}"
        imports.append(f'\t_ "{path}"')
    body = "\n".join([*imports, '\t"github.com/coredns/coredns/coremain"'])
    return (
        "// Code generated by reconverge from CoreDNS's plugin.cfg. DO NOT EDIT.\n\n"
        f"package main\n\nimport (\n{body}\n)\n\nfunc main() {{ coremain.Run() }}\n"
    )


def _coredns(ctx: Context) -> None:
    """CoreDNS from a wrapper main with all but :data:`COREDNS_EXCLUDED` plugins.

    coredns's go.mod has no replace/exclude, so ``go install mod@version`` would work, but
    its main links every plugin; ours is CoreDNS's own ``coremain.Run`` with fewer blank
    imports. GitCommit (shown by ``-version``) names the tag instead of a sha.
    """
    mod = "github.com/coredns/coredns"
    info = json.loads(ctx.go("mod", "download", "-json", f"{mod}@{ctx.version}", cwd=ctx.out))
    plugin_cfg = (Path(info["Dir"]) / "plugin.cfg").read_text()
    src = cache.root() / "src" / f"coredns-{ctx.version}"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(
        f"module reconverge.local/coredns\n\ngo 1.24.0\n\nrequire {mod} {ctx.version}\n"
    )
    (src / "main.go").write_text(coredns_main(plugin_cfg))
    ctx.go("mod", "tidy", cwd=src)
    flags = ldflags({f"{mod}/coremain.GitCommit": ctx.version})
    out = str(ctx.out / "coredns")
    ctx.go("build", "-v", "-trimpath", f"-ldflags={flags}", "-o", out, ".", cwd=src)
    ctx.extra["coredns_excluded_plugins"] = sorted(COREDNS_EXCLUDED)


def _pause(ctx: Context) -> None:
    """Our own pause (harness/build/pause.py): a local module, no proxy access at all."""
    src = cache.root() / "src" / f"pause-{ctx.version}"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(pause.GO_MOD)
    (src / "main.go").write_text(pause.SOURCE)
    ctx.go("build", "-v", "-trimpath", "-ldflags=-s -w", "-o", str(ctx.out / "pause"), ".", cwd=src)


def _plain_install(pkg: str, binary: str) -> Callable[[Context], None]:
    def build(ctx: Context) -> None:
        saved = ctx.env
        ctx.env = dict(ctx.env, GOBIN=str(ctx.out))
        try:
            ctx.go("install", "-v", "-trimpath", f"{pkg}@{ctx.version}", cwd=ctx.out)
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
    "kubernetes": Recipe(KUBERNETES_BINARIES, _kubernetes),
    "containerd": Recipe(("containerd", "ctr", "containerd-shim-runc-v2"), _containerd),
    "coredns": Recipe(("coredns",), _coredns),
    "pause": Recipe(("pause",), _pause),
    "kind": Recipe(("kind",), _plain_install("sigs.k8s.io/kind", "kind")),
    "kwok": Recipe(("kwok",), _plain_install("sigs.k8s.io/kwok/cmd/kwok", "kwok")),
    # the GitHub Actions workflow linter the CI-template test runs (fixtures/ci/, docs/ci.md)
    "actionlint": Recipe(
        ("actionlint",), _plain_install("github.com/rhysd/actionlint/cmd/actionlint", "actionlint")
    ),
}


def _children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for child so far.

    Why record it: wall time on a shared 2-core machine says more about the neighbours
    than about the build; CPU seconds / 2 is what the build costs an idle CI machine.
    """
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parse_spec(spec: str) -> tuple[str, str]:
    """``containerd@v2.1.5`` -> (component, version); the default version when omitted.

    A bundle member (``kube-apiserver``) is a valid component: it is built by its bundle.
    """
    component, _, version = spec.partition("@")
    if component not in RECIPES and component not in BUNDLED:
        known = sorted({*RECIPES, *BUNDLED})
        raise ReconvergeError(f"unknown component {component!r}; known: {', '.join(known)}")
    return component, version or DEFAULTS[component]


def ensure(
    component: str,
    version: str | None = None,
    *,
    log: Callable[[str], None] = print,
    step: tuple[int, int] = (1, 1),
) -> Path:
    """The cached main binary, building it first when it is missing.

    A bundle member (``kube-apiserver``, ``kubelet``, …) is answered by a stand-alone entry
    when an older cache has one, else by its bundle (``kubernetes``), built if needed: the
    member path is ``<bundle entry>/<member>``. ``ensure("kubernetes")`` returns the
    bundle's kube-apiserver; use :func:`harness.build.cache.binaries_dir` for the others.
    ``step`` is (k, N) of the caller's list, shown in the heartbeat line.

    Raises:
        BuildFailed: ``go`` failed (one line; the full output is in the named log file).
    """
    version = version or DEFAULTS[component]
    if component in BUNDLED and component not in RECIPES:
        hit = cache.locate(component, version)
        if hit is not None:
            log(f"{component} {version}: cached ({hit.parent})")
            return hit
        bundle = BUNDLED[component]
        return ensure(bundle, version, log=log, step=step).parent / component
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
        last = progress.last_seconds(component, version)
        hint = f", last build took {progress.fmt_seconds(last)}" if last is not None else ""
        log(f"{component} {version}: building with {go_version}{hint} (log {ctx.log})")
        beat = progress.Heartbeat(
            f"{component} {version}",
            step=step,
            last=last,
            detail=lambda: f"{ctx.compiled} packages compiled" if ctx.compiled else "",
        )
        t0, cpu0 = time.monotonic(), _children_cpu()
        try:
            with beat:
                recipe.build(ctx)
            seconds = round(time.monotonic() - t0, 1)
            cpu = round(_children_cpu() - cpu0, 1)
            missing = [b for b in recipe.binaries if not (tmp / b).is_file()]
            if missing:
                raise BuildFailed(
                    f"cannot build {component}@{version}: no {', '.join(missing)} "
                    f"after go finished (log: {ctx.log})"
                )
            m = {
                "component": component,
                "version": version,
                "go": go_version,
                "arch": cache.arch(),
                "main": recipe.binaries[0],
                "binaries": {b: str(final / b) for b in recipe.binaries},
                "sha256": {
                    b: hashlib.sha256((tmp / b).read_bytes()).hexdigest() for b in recipe.binaries
                },
                "build_seconds": seconds,
                "cpu_seconds": cpu,
                "packages_compiled": ctx.compiled,
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
    progress.record(component, version, seconds)
    log(f"built {component} {version} in {progress.fmt_seconds(seconds)}")
    return final / recipe.binaries[0]
