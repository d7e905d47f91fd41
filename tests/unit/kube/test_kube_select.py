"""Provider selection honours the option and availability; doctor rows have every column."""

from __future__ import annotations

import pytest

from harness.errors import ReconvergeError
from harness.providers import kube
from harness.providers.kube import local
from harness.providers.kube.base import Availability

KEYS = {"component", "version", "path", "backend", "status"}


def test_auto_prefers_local_when_available(monkeypatch):
    monkeypatch.delenv(kube.ENV_CHOICE, raising=False)
    monkeypatch.setattr(local.LocalProvider, "availability", lambda self: Availability(True))
    assert kube.select().name == "local"


def test_auto_never_picks_kubeconfig(monkeypatch):
    from harness.providers.kube import kind

    monkeypatch.delenv(kube.ENV_CHOICE, raising=False)
    monkeypatch.setattr(local.LocalProvider, "availability", lambda self: Availability(False, "x"))
    monkeypatch.setattr(kind.KindProvider, "availability", lambda self: Availability(False, "y"))
    assert kube.select("auto").name == "local"  # its reason is the actionable one


def test_explicit_choice_even_if_unavailable(tmp_path):
    p = kube.select("kubeconfig", kubeconfig=tmp_path / "missing")
    assert p.name == "kubeconfig"
    assert not p.availability()
    assert "does not exist" in p.availability().reason


def test_unknown_choice_is_one_line():
    with pytest.raises(ReconvergeError, match="unknown Kubernetes provider"):
        kube.select("minikube")


def test_describe_rows(monkeypatch):
    monkeypatch.setattr(local.LocalProvider, "availability", lambda self: Availability(True))
    rows = kube.describe("local")
    comps = [r["component"] for r in rows]
    assert comps[:2] == ["kube-apiserver", "etcd"]
    assert comps[-1] == "kube backend" and rows[-1]["backend"] == "local"
    assert all(set(r) == KEYS for r in rows)


def test_etcd_note_flags_debian_etcd():
    assert "below documented minimum" in local.etcd_note(
        local.parse_version("etcd Version: 3.4.23")
    )
    assert local.etcd_note((3, 6, 4)) == ""
    assert local.etcd_note((3, 5, 11)) == ""
    assert local.parse_version("Kubernetes v1.34.4") == (1, 34, 4)


def test_kind_config_pins_loopback_port():
    from harness.providers.kube.kind import config_document

    net = config_document(41234)["networking"]
    assert net["apiServerAddress"] == "127.0.0.1"
    assert net["apiServerPort"] == 41234
