"""Our CA: the serving certificate verifies for 127.0.0.1 and our name; the admin is a master."""

from __future__ import annotations

import ssl

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.providers.kube import pki


def test_serving_cert_covers_loopback_and_name(tmp_path):
    b = pki.issue(tmp_path)
    sans = pki.sans_of(b.server_cert)
    for want in ("127.0.0.1", "::1", "localhost", pki.SERVER_NAME):
        assert want in sans
    cert = x509.load_pem_x509_certificate(b.server_cert.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_admin_cert_is_system_masters(tmp_path):
    b = pki.issue(tmp_path)
    cert = x509.load_pem_x509_certificate(b.admin_cert.read_bytes())
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == pki.ADMIN_USER


def test_chain_loads_into_ssl_and_keys_are_private(tmp_path):
    b = pki.issue(tmp_path)
    ctx = ssl.create_default_context(cafile=str(b.ca_cert))
    ctx.load_cert_chain(str(b.admin_cert), str(b.admin_key))
    for key in (b.ca_key, b.server_key, b.admin_key, b.sa_key):
        assert key.stat().st_mode & 0o077 == 0, key
    assert b.sa_pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
