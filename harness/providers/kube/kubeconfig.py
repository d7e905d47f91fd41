"""Kubeconfig files and API clients for a cluster, direct or through a proxy.

Why one place builds every client: the reconciler must dial toxiproxy while the harness's
own "truth" client dials the API server directly, and both must agree on certificates,
user and timeouts. A proxy in front of a TLS server is just another ``host:port`` for the
client (toxiproxy passes TLS through); hostname verification uses the URL host, so a
loopback proxy verifies against the ``127.0.0.1`` SAN, and a cluster known by a DNS name
is verified with ``tls_server_name`` (§5.3 of ``kubernetes-path.md``).
"""

from __future__ import annotations

import base64
import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig

from harness.errors import ReconvergeError


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server.

    ``server`` is the URL clients use when nothing is in between. ``tls_server_name``
    is the name to verify when dialing something else (a proxy); empty means "the URL's
    host", which is right whenever the certificate has the proxy's IP as a SAN.
    """

    server: str
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    token: str | None = None
    tls_server_name: str = ""
    insecure: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.server).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.server)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def address(self) -> str:
        """``host:port`` of the API server, as a toxiproxy upstream."""
        return f"{self.host}:{self.port}"

    def configuration(self, *, via: str | None = None) -> kclient.Configuration:
        """A client configuration; ``via`` = ``host:port`` of a proxy to dial instead.

        The verification name stays the API server's (IP SAN or ``tls_server_name``), so a
        proxy on loopback needs nothing else when the certificate covers ``127.0.0.1``.
        """
        cfg = kclient.Configuration()
        cfg.host = self.server.rstrip("/")
        if via:
            cfg.host = f"https://{via}"
            # A DNS-named server keeps its name for SNI and verification; an IP server is
            # verified against the proxy's IP, which must be a SAN (ours always is).
            if self.tls_server_name:
                cfg.tls_server_name = self.tls_server_name
            elif not _is_ip(self.host):
                cfg.tls_server_name = self.host
        elif self.tls_server_name:
            cfg.tls_server_name = self.tls_server_name
        if self.ca_cert:
            cfg.ssl_ca_cert = str(self.ca_cert)
        if self.client_cert:
            cfg.cert_file = str(self.client_cert)
        if self.client_key:
            cfg.key_file = str(self.client_key)
        if self.token:
            cfg.api_key = {"authorization": f"Bearer {self.token}"}
        cfg.verify_ssl = not self.insecure
        # toxiproxy is not an HTTP CONNECT proxy; an inherited HTTPS_PROXY would break it.
        cfg.proxy = None
        cfg.no_proxy = "*"
        return cfg

    def api_client(self, *, via: str | None = None) -> kclient.ApiClient:
        """A fresh :class:`kubernetes.client.ApiClient` (its own connection pool)."""
        return kclient.ApiClient(self.configuration(via=via))


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write(path: Path, creds: Credentials, *, context: str = "reconverge") -> Path:
    """Write a self-contained kubeconfig (certificates embedded) for ``creds``.

    Embedded data rather than file paths: the file stays valid when copied into a failure
    bundle, and ``kubectl --kubeconfig`` works from any directory.
    """
    cluster: dict[str, Any] = {"server": creds.server}
    if creds.ca_cert:
        cluster["certificate-authority-data"] = _b64(creds.ca_cert)
    if creds.tls_server_name:
        cluster["tls-server-name"] = creds.tls_server_name
    if creds.insecure:
        cluster["insecure-skip-tls-verify"] = True
    user: dict[str, Any] = {}
    if creds.client_cert and creds.client_key:
        user["client-certificate-data"] = _b64(creds.client_cert)
        user["client-key-data"] = _b64(creds.client_key)
    if creds.token:
        user["token"] = creds.token
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def default_path() -> Path | None:
    """The kubeconfig a user would expect: ``$KUBECONFIG`` (first entry), then ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    for part in env.split(os.pathsep):
        if part and Path(part).is_file():
            return Path(part)
    home = Path.home() / ".kube" / "config"
    return home if home.is_file() else None


def load(path: Path, *, context: str | None = None, workdir: Path | None = None) -> Credentials:
    """Credentials from an existing kubeconfig (any auth the official client supports).

    The official loader materialises ``*-data`` fields into temp files; ``workdir`` is
    where we copy them so they live as long as the run (and the janitor removes them).

    Raises:
        ReconvergeError: the file does not exist or names no usable context.
    """
    if not path.is_file():
        raise ReconvergeError(f"kubeconfig {path} does not exist", fix="--reconverge-kubeconfig")
    cfg = kclient.Configuration()
    try:
        kconfig.load_kube_config(
            config_file=str(path), context=context, client_configuration=cfg, persist_config=False
        )
    except Exception as exc:  # the loader raises many types; the user needs one line
        raise ReconvergeError(f"kubeconfig {path}: {exc}") from None
    token = None
    auth = (cfg.api_key or {}).get("authorization")
    if auth and auth.startswith("Bearer "):
        token = auth[len("Bearer ") :]

    def keep(p: str | None, name: str) -> Path | None:
        if not p:
            return None
        src = Path(p)
        if workdir is None:
            return src
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dst = workdir / name
        dst.write_bytes(src.read_bytes())
        os.chmod(dst, 0o600)
        return dst

    return Credentials(
        server=cfg.host,
        ca_cert=keep(cfg.ssl_ca_cert, "ca.crt"),
        client_cert=keep(cfg.cert_file, "client.crt"),
        client_key=keep(cfg.key_file, "client.key"),
        token=token,
        tls_server_name=getattr(cfg, "tls_server_name", None) or "",
        insecure=not cfg.verify_ssl,
    )


def with_server(creds: Credentials, server: str) -> Credentials:
    """The same credentials for another URL (e.g. a pinned kind port)."""
    c = copy.copy(creds)
    object.__setattr__(c, "server", server)
    return c
