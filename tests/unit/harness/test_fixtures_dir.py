"""harness.fixtures_dir: one place knows where the data fixtures are, in every kind of install."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import fixtures_dir
from harness.errors import ReconvergeError
from harness.kind import layers
from harness.providers import containerd
from harness.providers.kube import crds, kind, kwok

REPO = Path(__file__).resolve().parents[3]


def test_checkout_reads_the_top_level_fixtures_through_the_package_symlink():
    link = REPO / "harness" / fixtures_dir.PACKAGE_DIR
    assert link.is_symlink(), "harness/_fixtures must stay a symlink to ../fixtures"
    assert fixtures_dir.root().resolve() == (REPO / "fixtures").resolve()


def test_every_module_constant_points_at_existing_fixtures():
    assert (containerd.FIXTURES / "config-v2.toml").is_file()
    assert sorted(p.name for p in crds.FIXTURES.glob("*.yaml"))
    assert (kind.FIXTURES / "kubeadm-patches.yaml").is_file()
    assert kwok.STAGES.is_file()
    for rel in layers.IMAGE_FIXTURES:
        assert (layers.FIXTURES / rel).is_file(), rel


def test_a_missing_directory_is_one_actionable_error(monkeypatch):
    monkeypatch.setattr(fixtures_dir, "PACKAGE_DIR", "_no_such_fixtures")
    with pytest.raises(ReconvergeError) as info:
        fixtures_dir.path("containerd")
    assert "reinstall reconverge" in info.value.one_line()
