"""Build cache: layout, hits without go, wrapper-module derivation, one-line errors."""

from __future__ import annotations

import json

import pytest

from harness.build import cache, main, recipes
from harness.errors import ReconvergeError

GOMOD = """module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tk8s.io/api v0.0.0
\tk8s.io/apimachinery v0.0.0
\tgithub.com/x/y v1.2.3
)

exclude (
\t// a comment
\tgithub.com/davecgh/go-spew v1.1.2-0.2018
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
)
"""


def test_staging_replaces_are_derived_from_the_tag():
    lines = recipes.staging_replaces(GOMOD, "v1.34.4")
    assert lines == [
        "replace k8s.io/api => k8s.io/api v0.34.4",
        "replace k8s.io/apimachinery => k8s.io/apimachinery v0.34.4",
    ]


def test_carried_directives_keep_godebug_and_excludes():
    out = recipes.carried_directives(GOMOD)
    assert out[0] == "godebug default=go1.24"
    assert out[1].startswith("exclude (\n") and "go-spew v1.1.2-0.2018" in out[1]
    assert out[1].endswith("\n)")
    assert len(out) == 2, "a block must not also be copied as a single-line exclude"
    single = recipes.carried_directives("exclude a.b/c v1.0.0\n")
    assert single == ["exclude a.b/c v1.0.0"]


def test_ldflags_render():
    assert recipes.ldflags({"a.B": "v1"}) == "-s -w -X a.B=v1"


def test_parse_spec_defaults_and_unknown():
    assert recipes.parse_spec("containerd@v2.1.4") == ("containerd", "v2.1.4")
    assert recipes.parse_spec("etcd") == ("etcd", recipes.DEFAULTS["etcd"])
    with pytest.raises(ReconvergeError, match="unknown component 'nope'"):
        recipes.parse_spec("nope")


def test_locate_is_a_cache_hit_without_go(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # any go invocation would fail
    d = cache.entry_dir("etcd", "v3.6.16", "go1.26.8")
    d.mkdir(parents=True)
    (d / "etcd").write_text("#!/bin/sh\n")
    (d / "manifest.json").write_text(
        json.dumps({"component": "etcd", "version": "v3.6.16", "go": "go1.26.8", "main": "etcd"})
    )
    assert cache.locate("etcd", "v3.6.16") == d / "etcd"
    assert cache.locate("etcd", "v3.6.99") is None
    assert recipes.ensure("etcd", "v3.6.16", log=lambda s: None) == d / "etcd"
    assert [m["component"] for m in cache.cached()] == ["etcd"]


def test_missing_manifest_is_not_a_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    d = cache.entry_dir("etcd", "v3.6.16", "go1.26.8")
    d.mkdir(parents=True)
    (d / "etcd").write_text("half-built")
    assert cache.locate("etcd", "v3.6.16") is None


def test_main_usage_and_unknown_component_are_one_line(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage:")
    assert main(["ensure", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown component" in err


def test_images_subcommand_is_in_the_usage(capsys):
    assert main(["nope"]) == 2
    assert "images" in capsys.readouterr().err
