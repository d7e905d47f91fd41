"""Kubeconfig round trip, and clients that dial a proxy but verify the server."""

from __future__ import annotations

import yaml

from harness.providers.kube import kubeconfig, pki


def _creds(tmp_path, server="https://127.0.0.1:6443"):
    b = pki.issue(tmp_path / "pki")
    return kubeconfig.Credentials(
        server=server, ca_cert=b.ca_cert, client_cert=b.admin_cert, client_key=b.admin_key
    )


def test_written_kubeconfig_embeds_data_and_loads_back(tmp_path):
    creds = _creds(tmp_path)
    path = kubeconfig.write(tmp_path / "kc", creds)
    doc = yaml.safe_load(path.read_text())
    assert "certificate-authority-data" in doc["clusters"][0]["cluster"]
    assert path.stat().st_mode & 0o077 == 0
    loaded = kubeconfig.load(path, workdir=tmp_path / "loaded")
    assert loaded.server == creds.server
    assert loaded.ca_cert.read_bytes() == creds.ca_cert.read_bytes()
    assert loaded.client_key.read_bytes() == creds.client_key.read_bytes()


def test_via_proxy_keeps_ip_verification(tmp_path):
    creds = _creds(tmp_path)
    cfg = creds.configuration(via="127.0.0.1:40000")
    assert cfg.host == "https://127.0.0.1:40000"
    assert not cfg.tls_server_name  # the proxy's IP is a SAN: nothing else needed
    assert cfg.verify_ssl and cfg.proxy is None
    assert creds.address == "127.0.0.1:6443"


def test_via_proxy_for_named_server_sets_sni(tmp_path):
    creds = _creds(tmp_path, server="https://api.example.test:6443")
    cfg = creds.configuration(via="127.0.0.1:40000")
    assert cfg.tls_server_name == "api.example.test"
