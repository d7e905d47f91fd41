"""The Kubernetes bundle: one ``go build`` for seven commands, members found through it.

A fake ``go`` on PATH records its invocations and writes the binaries a real one would,
so the whole ensure path (wrapper, one build, manifest, look-ups) runs in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from harness import build
from harness.build import cache, components, progress, recipes

KGOMOD = """module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tk8s.io/api v0.0.0
\tk8s.io/kubelet v0.0.0
)
"""

FAKE_GO = r"""#!/usr/bin/env python3
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_GO_CALLS"], "a") as f:
    f.write(json.dumps(args) + "\n")
if args[:2] == ["env", "GOVERSION"]:
    print("go1.26.8"); sys.exit(0)
if args[:2] == ["mod", "download"]:
    print(json.dumps({"GoMod": os.environ["FAKE_GOMOD"]})); sys.exit(0)
if args[:2] == ["mod", "tidy"]:
    sys.exit(0)
if os.environ.get("FAKE_GO_FAIL"):
    print("# k8s.io/kubernetes/cmd/kubelet"); print("link: out of memory"); sys.exit(1)
if args[0] == "build":
    out = Path(args[args.index("-o") + 1])
    for pkg in args[args.index("-o") + 2:]:
        print(pkg)
        if out.name and not str(args[args.index("-o") + 1]).endswith("/"):
            target = out
        else:
            target = out / pkg.rsplit("/", 1)[1]
        target.write_text("#!/bin/sh\necho " + pkg + "\n")
        target.chmod(0o755)
    sys.exit(0)
print("unexpected", args); sys.exit(3)
"""


@pytest.fixture
def fake_go(tmp_path, monkeypatch):
    """A cache in tmp_path and a ``go`` that records every call (``nice`` stays real)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    go = bindir / "go"
    go.write_text(FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    gomod = tmp_path / "k.mod"
    gomod.write_text(KGOMOD)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_GO_CALLS", str(calls))
    monkeypatch.setenv("FAKE_GOMOD", str(gomod))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")

    def read_calls() -> list[list[str]]:
        if not calls.exists():
            return []
        return [json.loads(line) for line in calls.read_text().splitlines()]

    return read_calls


def _builds(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if c[0] == "build"]


def test_bundle_is_one_go_build_of_seven_commands_with_version_ldflags(fake_go):
    path = build.ensure("kubernetes", log=lambda s: None)
    builds = _builds(fake_go())
    assert len(builds) == 1, "the seven commands must share one go build invocation"
    args = builds[0]
    pkgs = args[args.index("-o") + 2 :]
    assert pkgs == [f"k8s.io/kubernetes/cmd/{b}" for b in components.KUBERNETES_BINARIES]
    assert args[args.index("-o") + 1].endswith("/"), "-o must name a directory"
    flags = next(a for a in args if a.startswith("-ldflags="))
    for p in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {p}.gitVersion=v1.34.4" in flags
        assert f"-X {p}.gitMajor=1 " in flags and f"-X {p}.gitMinor=34 " in flags
        assert f"-X {p}.gitTreeState=clean" in flags and f"-X {p}.buildDate=20" in flags
    assert path.name == "kube-apiserver"
    m = cache.manifest("kubernetes")
    assert m is not None and set(m["sha256"]) == set(components.KUBERNETES_BINARIES)
    assert m["packages_compiled"] == 7
    assert m["cpu_seconds"] >= 0 and m["build_seconds"] >= 0
    wrapper = cache.root() / "src" / "kubernetes-v1.34.4"
    gomod = (wrapper / "go.mod").read_text()
    assert "replace k8s.io/kubelet => k8s.io/kubelet v0.34.4" in gomod
    assert "godebug default=go1.24" in gomod
    tools = (wrapper / "tools.go").read_text()
    assert all(f'"k8s.io/kubernetes/cmd/{b}"' in tools for b in components.KUBERNETES_BINARIES)


def test_members_are_answered_by_the_bundle_without_go(fake_go):
    bundle = build.ensure("kubernetes", log=lambda s: None)
    n = len(fake_go())
    for name in components.KUBERNETES_BINARIES:
        assert build.locate(name) == bundle.parent / name
        assert build.ensure(name, log=lambda s: None) == bundle.parent / name
        assert build.binaries_dir(name) == bundle.parent
    assert build.binaries_dir("kubernetes") == bundle.parent
    assert len(fake_go()) == n, "a cached bundle must not run go again"
    assert build.locate("kubelet", "v1.34.99") is None


def test_cold_member_ensure_builds_the_bundle_once(fake_go):
    kubelet = build.ensure("kubelet", log=lambda s: None)
    assert kubelet.name == "kubelet" and kubelet.is_file()
    build.ensure("kube-apiserver", log=lambda s: None)
    assert len(_builds(fake_go())) == 1
    assert not (cache.root() / "bin" / "kube-apiserver").exists()


def test_an_older_standalone_entry_still_wins(fake_go):
    d = cache.entry_dir("kube-apiserver", "v1.34.4", "go1.26.8")
    d.mkdir(parents=True)
    (d / "kube-apiserver").write_text("old")
    m = {"component": "kube-apiserver", "main": "kube-apiserver"}
    (d / "manifest.json").write_text(json.dumps(m))
    assert build.ensure("kube-apiserver", log=lambda s: None) == d / "kube-apiserver"
    assert fake_go() == []


def test_failed_bundle_is_one_line_and_leaves_nothing(fake_go, monkeypatch):
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    with pytest.raises(recipes.BuildFailed) as err:
        build.ensure("kubernetes", log=lambda s: None)
    msg = str(err.value)
    assert "cannot build kubernetes@v1.34.4: link: out of memory" in msg
    assert "logs/kubernetes-v1.34.4.log" in msg and "\n" not in msg
    assert build.locate("kubernetes") is None
    leftovers = list((cache.root() / "bin" / "kubernetes").iterdir())
    assert [p.name for p in leftovers if not p.name.endswith(".lock")] == []


def test_build_time_is_recorded_and_shown_next_time(fake_go, monkeypatch):
    build.ensure("kubernetes", log=lambda s: None)
    assert progress.last_seconds("kubernetes", "v1.34.4") is not None
    for d in (cache.root() / "bin" / "kubernetes").iterdir():
        if d.is_dir():
            shutil.rmtree(d)  # the documented way to force a rebuild
    lines: list[str] = []
    build.ensure("kubernetes", log=lines.append)
    assert "last build took" in lines[0]


def test_default_set_builds_kube_apiserver_once_and_everything_kind_needs():
    specs = [recipes.parse_spec(s) for s in components.DEFAULT_SET]
    names = [c for c, _ in specs]
    assert "kubernetes" in names
    assert not set(names) & set(components.BUNDLED), "a member would be a second build"
    for needed in (("etcd", "v3.6.5"), ("coredns", "v1.12.1"), ("kind", "v0.33.0")):
        assert needed in specs
    assert ("etcd", "v3.6.16") in specs, "the local control plane's etcd stays"
    assert len(set(specs)) == len(specs)


def test_parse_spec_accepts_members_and_lists_them_when_unknown():
    assert recipes.parse_spec("kubelet") == ("kubelet", "v1.34.4")
    assert recipes.parse_spec("kubernetes@v1.34.5") == ("kubernetes", "v1.34.5")
    with pytest.raises(Exception, match="kubelet") as err:
        recipes.parse_spec("kubelett")
    assert "kubernetes" in str(err.value)


def test_main_prints_a_total(fake_go, capsys):
    assert build.main(["ensure", "kubernetes", "kubectl"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("build: 2 components ready in ")
    assert len(_builds(fake_go())) == 1


PLUGIN_CFG = """# comment: name:package
metadata:metadata
route53:route53
kubernetes:kubernetes
prometheus:metrics
on:github.com/coredns/caddy/onevent
trace:trace
"""


def test_coredns_main_keeps_the_release_plugins_but_the_excluded():
    src = recipes.coredns_main(PLUGIN_CFG)
    assert '_ "github.com/coredns/coredns/plugin/kubernetes"' in src
    assert '_ "github.com/coredns/coredns/plugin/metrics"' in src, "package, not directive name"
    assert '_ "github.com/coredns/caddy/onevent"' in src, "full import paths stay as they are"
    assert "route53" not in src and "plugin/trace" not in src
    assert "comment" not in src
    assert src.startswith("// Code generated") and "coremain.Run()" in src
    # every plugin of kubeadm's Corefile must survive the exclusions
    kubeadm_corefile = {"errors", "health", "ready", "kubernetes", "prometheus", "forward",
                        "cache", "loop", "reload", "loadbalance"}  # fmt: skip
    assert not kubeadm_corefile & recipes.COREDNS_EXCLUDED
