"""Our own tiny certificate authority for the local control plane.

Why our own CA instead of reusing anything on the machine: the harness must be able to
start a fresh API server offline, with a serving certificate whose SANs cover the
address the reconciler really dials (``127.0.0.1`` of a toxiproxy listener, since
toxiproxy passes TLS through untouched), and with a client certificate in
``system:masters`` so no RBAC objects are needed (the envtest recipe, §2.1 of
``kubernetes-path.md``). ECDSA P-256 keeps key generation in the millisecond range, which
matters for the cold bring-up budget.

Everything here is pure: it writes PEM files into a directory the caller owns.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: A fixed DNS name on the serving certificate, for cases that dial by name (SNI,
#: ``tls_server_name``) instead of by IP.
SERVER_NAME = "kube-apiserver.reconverge"
#: Names and addresses the serving certificate is valid for.
SERVER_SANS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost", SERVER_NAME)
#: The harness's user: ``system:masters`` bypasses RBAC, exactly like envtest's default.
ADMIN_USER = "reconverge-admin"
ADMIN_GROUPS: tuple[str, ...] = ("system:masters",)

_VALIDITY = dt.timedelta(days=7)  # envtest uses 168 h too; runs are short-lived


@dataclass(frozen=True)
class Bundle:
    """Paths of every PEM file the control plane and its clients need."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path  # service-account signing key (private)
    sa_pub: Path  # service-account verification key (public)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + _VALIDITY)
    )


def issue(directory: Path, *, sans: tuple[str, ...] = SERVER_SANS) -> Bundle:
    """Create a CA, a serving certificate, an admin client certificate and an SA key pair.

    Args:
        directory: where to write the PEM files (created 0700 if missing).
        sans: DNS names and IP addresses of the serving certificate.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)

    ca_key = _key()
    ca_name = _name("reconverge-ca", ("reconverge",))
    ca_cert = (
        _builder(ca_name, ca_name, ca_key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, orgs: tuple[str, ...], usage: x509.ObjectIdentifier, alt: tuple[str, ...]):
        key = _key()
        b = (
            _builder(_name(cn, orgs), ca_name, key, now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if alt:
            b = b.add_extension(x509.SubjectAlternativeName([_san(a) for a in alt]), False)
        return key, b.sign(ca_key, hashes.SHA256())

    server_key, server_cert = leaf("localhost", (), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    admin_key, admin_cert = leaf(ADMIN_USER, ADMIN_GROUPS, ExtendedKeyUsageOID.CLIENT_AUTH, ())
    sa_key = _key()

    b = Bundle(
        dir=directory,
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "apiserver.crt",
        server_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    _write_cert(b.ca_cert, ca_cert)
    _write_key(b.ca_key, ca_key)
    _write_cert(b.server_cert, server_cert)
    _write_key(b.server_key, server_key)
    _write_cert(b.admin_cert, admin_cert)
    _write_key(b.admin_key, admin_key)
    _write_key(b.sa_key, sa_key)
    b.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return b


def sans_of(cert_path: Path) -> list[str]:
    """The SANs of a certificate as strings (for doctor output and tests)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    out += list(ext.get_values_for_type(x509.DNSName))
    return out
