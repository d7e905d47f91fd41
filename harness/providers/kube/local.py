"""The embedded default: etcd + kube-apiserver started the envtest way, on 127.0.0.1.

Why these flags (§2.1–2.2 of ``kubernetes-path.md``, plus what faults need):

- client-certificate auth with ``O=system:masters`` and RBAC, ServiceAccount admission off
  (no controller manager creates the ``default`` ServiceAccount) — envtest's recipe;
- ``--watch-cache=false``: every watch is served by etcd directly, so a watch from a
  resourceVersion older than an etcd compaction gets **410 Gone** — exactly and only then.
  With the watch cache on, whether an old resourceVersion is still in the cache's window
  depends on timing, and a 410 case would flake;
- ``--etcd-compaction-interval=0``: the API server never compacts by itself; the harness
  compacts on demand (:meth:`LocalControlPlane.compact`), so 410s happen when a case says;
- ``--enable-priority-and-fairness=false``, ``--endpoint-reconciler-type=none``: fewer
  background writes, a quieter journal and a faster bring-up on 2 cores;
- ``--shutdown-watch-termination-grace-period=5s``: a graceful restart ends every watch
  with a proper end of stream at once (without it the server holds watches open until
  the process exits, and clients only notice through their read timeouts);
- etcd on ``/dev/shm`` with ``--unsafe-no-fsync``: it is throw-away state.

Optionally the API server reaches etcd through a toxiproxy proxy (``etcd_proxy=``), so a
case can slow or cut storage and see it surface as API latency or 5xx.

The serving certificate covers 127.0.0.1, so a reconciler dialing a toxiproxy listener on
another loopback port verifies the server without any extra name. Readiness is ``/readyz``
(not only ``/healthz``): RBAC bootstrap roles and the ``default`` namespace exist by then.
"""

from __future__ import annotations

import base64
import http.client
import re
import secrets
import shutil
import signal
import ssl
import time
from pathlib import Path
from typing import Any

import requests

from harness import binaries, journal
from harness.errors import ProviderFailed
from harness.providers.kube import kubeconfig, pki
from harness.providers.kube.base import (
    COMPACT,
    ETCD_PROXY,
    RESTART,
    Availability,
    Cluster,
    Provider,
)
from harness.providers.process import ManagedProcess, free_port
from harness.run import Run

#: etcd releases below these miss the /livez,/readyz endpoints Kubernetes ≥1.31 assumes and
#: watch-progress requests (kubernetes#123192); they still serve a test API server.
ETCD_DOCUMENTED_MINIMUM = {(3, 4): (3, 4, 29), (3, 5): (3, 5, 11)}
READY_TIMEOUT = 60.0  # §2.4: slow 2-core runners have needed 31–35 s


def parse_version(text: str) -> tuple[int, ...] | None:
    """``(3, 4, 23)`` from ``etcd Version: 3.4.23`` or ``Kubernetes v1.34.3``."""
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def etcd_note(version: tuple[int, ...] | None) -> str:
    """Why an etcd is only a fallback, or "" when it is fine."""
    if version is None:
        return "unknown version"
    floor = ETCD_DOCUMENTED_MINIMUM.get(version[:2])
    if version[:2] < (3, 4) or (floor is not None and version < floor):
        return "below documented minimum 3.4.29/3.5.11; no watch-progress requests"
    return ""


class LocalProvider(Provider):
    """etcd + kube-apiserver from the build cache (or PATH)."""

    name = "local"

    def availability(self) -> Availability:
        missing = [c for c in ("kube-apiserver", "etcd") if binaries.locate(c) is None]
        if missing:
            return Availability(False, f"unavailable: {', '.join(missing)} not installed")
        return Availability(True)

    def rows(self) -> list[dict[str, str]]:
        out = []
        for comp in ("kube-apiserver", "etcd"):
            found = binaries.locate(comp)
            if found is None:
                out.append(_row(comp, "missing", "-", "-", "local"))
                continue
            reported = binaries.version_of(comp, found.path)
            status = "ok"
            if comp == "etcd":
                note = etcd_note(parse_version(reported))
                if note:
                    status = "fallback"
                    reported = f"{reported} ({note})"
            out.append(_row(comp, status, reported, f"{found.path} ({found.source})", "local"))
        kcm = _locate_optional("kube-controller-manager")
        out.append(
            _row(
                "kube-controller-manager",
                "optional",
                binaries.version_of("kube-apiserver", kcm) if kcm else "-",
                str(kcm) if kcm else "-",
                "not used (namespace deletion, GC cascade)",
            )
        )
        return out

    def start(self, run: Run, **options: Any) -> LocalControlPlane:
        plane = LocalControlPlane(run, **options)
        plane.start()
        return plane


def _row(component: str, status: str, version: str, path: str, backend: str) -> dict[str, str]:
    return {
        "component": component,
        "status": status,
        "version": version,
        "path": path,
        "backend": backend,
    }


def _locate_optional(name: str) -> Path | None:
    try:
        from harness import build

        p = build.locate(name)
        if p is not None and Path(p).exists():
            return Path(p)
    except Exception:
        pass
    w = shutil.which(name)
    return Path(w) if w else None


class LocalControlPlane(Cluster):
    """etcd and kube-apiserver owned by one run."""

    def __init__(
        self,
        run: Run,
        *,
        etcd_proxy: Any = None,
        timeout: float = READY_TIMEOUT,
        extra_apiserver_args: list[str] | None = None,
    ) -> None:
        self.run = run
        self.timeout = timeout
        self.etcd_proxy_client = etcd_proxy  # a ToxiproxyClient, or None
        self.etcd_proxy: Any = None
        self.extra_apiserver_args = list(extra_apiserver_args or [])
        # one directory per control plane (certificates, kubeconfig, logs): a second plane in
        # the same run must not re-issue the first one's CA under its feet
        name = "kube" if not (run.dir / "kube").exists() else f"kube-{secrets.token_hex(3)}"
        self.dir = run.path(name, mkdir=True)
        self.etcd_bin = binaries.require("etcd")
        self.apiserver_bin = binaries.require("kube-apiserver")
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.etcd_port = 0
        self.api_port = 0
        self.bundle: pki.Bundle | None = None
        caps = {RESTART, COMPACT} | ({ETCD_PROXY} if etcd_proxy is not None else set())
        super().__init__(
            backend="local",
            creds=kubeconfig.Credentials(server="https://127.0.0.1:0"),
            kubeconfig=self.dir / "kubeconfig",
            capabilities=frozenset(caps),
        )

    # -- bring-up ---------------------------------------------------------------------
    def start(self) -> LocalControlPlane:
        """Certificates, etcd, the API server; returns once ``/readyz`` answers 200."""
        t0 = time.monotonic()
        self.bundle = pki.issue(self.dir / "pki")
        self._start_etcd()
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        if self.etcd_proxy_client is not None:
            self.etcd_proxy = self.etcd_proxy_client.create(
                f"{self.run.id}-etcd", f"127.0.0.1:{self.etcd_port}"
            )
            self.run.janitor.callback("kube etcd proxy", self._destroy_etcd_proxy)
            etcd_url = f"http://{self.etcd_proxy.listen}"
        self._start_apiserver(etcd_url)
        self.creds = kubeconfig.Credentials(
            server=f"https://127.0.0.1:{self.api_port}",
            ca_cert=self.bundle.ca_cert,
            client_cert=self.bundle.admin_cert,
            client_key=self.bundle.admin_key,
        )
        kubeconfig.write(self.kubeconfig, self.creds)
        self.bring_up_seconds = time.monotonic() - t0
        self.versions = {
            "kube-apiserver": binaries.version_of("kube-apiserver", self.apiserver_bin),
            "etcd": binaries.version_of("etcd", self.etcd_bin),
        }
        journal.emit("kube", "control_plane_ready", **self.describe())
        return self

    def _start_etcd(self) -> None:
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() else self.dir
        # unique per control plane: a run may hold two (a test's own next to the session's),
        # and the rmtree below must never wipe a live etcd's data
        data = base / f"rcv-{self.run.id}-etcd-{secrets.token_hex(3)}"
        self.run.janitor.path(data)  # registered before it exists (SIGKILL sweeps)
        last: Exception | None = None
        for _attempt in range(3):
            shutil.rmtree(data, ignore_errors=True)
            self.etcd_port, peer = free_port(), free_port()
            argv = [
                str(self.etcd_bin),
                "--name=default",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--logger=zap",
                "--log-level=warn",
            ]
            proc = ManagedProcess(self.run, "etcd", argv).start()
            try:
                proc.wait_ready(self._etcd_healthy, timeout=self.timeout, what="/health true")
            except ProviderFailed as exc:
                last = exc
                proc.stop()
                if "address already in use" in str(exc):
                    continue
                raise
            self.etcd = proc
            return
        raise last or ProviderFailed("etcd did not start")

    def _etcd_healthy(self) -> bool:
        try:
            r = requests.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=1)
        except requests.RequestException:
            return False
        return r.status_code == 200 and '"true"' in r.text

    def _apiserver_argv(self, etcd_url: str) -> list[str]:
        assert self.bundle is not None
        b = self.bundle
        port = self.api_port
        return [
            str(self.apiserver_bin),
            f"--etcd-servers={etcd_url}",
            "--etcd-compaction-interval=0",
            "--watch-cache=false",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={self.dir / 'cert'}",
            f"--tls-cert-file={b.server_cert}",
            f"--tls-private-key-file={b.server_key}",
            f"--client-ca-file={b.ca_cert}",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--service-account-issuer=https://127.0.0.1:{port}/",
            f"--service-account-key-file={b.sa_pub}",
            f"--service-account-signing-key-file={b.sa_key}",
            "--authorization-mode=RBAC",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--shutdown-delay-duration=0s",
            # end watches cleanly on SIGTERM (clients see a properly ended stream, §5.1)
            # instead of holding them until the process exits
            "--shutdown-watch-termination-grace-period=5s",
            *self.extra_apiserver_args,
        ]

    def _start_apiserver(self, etcd_url: str) -> None:
        last: Exception | None = None
        for _attempt in range(3):
            self.api_port = free_port()
            self._apiserver_etcd_url = etcd_url
            proc = ManagedProcess(
                self.run, "kube-apiserver", self._apiserver_argv(etcd_url)
            ).start()
            try:
                proc.wait_ready(self._readyz, timeout=self.timeout, what="/readyz 200")
            except ProviderFailed as exc:
                last = exc
                proc.stop()
                if "address already in use" in str(exc):
                    continue
                raise
            self.apiserver = proc
            return
        raise last or ProviderFailed("kube-apiserver did not start")

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.bundle is not None
        ctx = ssl.create_default_context(cafile=str(self.bundle.ca_cert))
        ctx.load_cert_chain(str(self.bundle.admin_cert), str(self.bundle.admin_key))
        return ctx

    def _readyz(self) -> bool:
        """HTTPS GET /readyz with the admin certificate; True on 200."""
        if not hasattr(self, "_ctx"):
            self._ctx = self._ssl_context()
        conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, context=self._ctx, timeout=2)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    # -- faults ---------------------------------------------------------------------------
    def restart_apiserver(self, *, graceful: bool = True) -> float:
        """Stop the API server (SIGTERM, or SIGKILL when not graceful) and start it again.

        Same port, same certificates, same etcd: clients see their watches end (gracefully
        or by a cut connection) and refused connections until it is ready again.
        """
        assert self.apiserver is not None
        t0 = time.monotonic()
        old = self.apiserver
        journal.emit("kube", "apiserver_restart", graceful=graceful, pid=old.pid)
        if graceful:
            old.stop(sig=signal.SIGTERM, grace=20.0)
        else:
            old.kill()
            old.stop()
        self.run.janitor.forget_process(old.pid)
        proc = ManagedProcess(
            self.run, "kube-apiserver", self._apiserver_argv(self._apiserver_etcd_url)
        ).start()
        self.apiserver = proc  # before waiting: a failed restart must still be stoppable
        proc.wait_ready(self._readyz, timeout=self.timeout, what="/readyz 200 after restart")
        took = time.monotonic() - t0
        journal.emit("kube", "apiserver_ready_again", seconds=round(took, 3), pid=proc.pid)
        return took

    def etcd_revision(self) -> int:
        """etcd's current revision (the newest resourceVersion of any object)."""
        r = requests.post(
            f"http://127.0.0.1:{self.etcd_port}/v3/kv/range",
            json={"key": base64.b64encode(b"\0").decode(), "limit": 1},
            timeout=5,
        )
        r.raise_for_status()
        return int(r.json()["header"]["revision"])

    def compact(self) -> int:
        """Compact etcd at its current revision; every older resourceVersion is now gone.

        Goes to etcd directly (never through the etcd proxy): it is the harness acting.
        """
        rev = self.etcd_revision()
        r = requests.post(
            f"http://127.0.0.1:{self.etcd_port}/v3/kv/compaction",
            json={"revision": str(rev), "physical": True},
            timeout=10,
        )
        if r.status_code != 200 and "already been compacted" not in r.text:
            raise ProviderFailed(f"etcd compaction at {rev} failed: {r.status_code} {r.text}")
        journal.emit("kube", "etcd_compacted", revision=rev)
        return rev

    # -- tear-down ------------------------------------------------------------------------
    def stop(self) -> None:
        """API server first (it would log etcd errors otherwise), then etcd."""
        for proc in (self.apiserver, self.etcd):
            if proc is not None:
                proc.stop(grace=10.0)
        self._destroy_etcd_proxy()
        journal.emit("kube", "control_plane_stopped")

    def _destroy_etcd_proxy(self) -> None:
        proxy, self.etcd_proxy = self.etcd_proxy, None
        if proxy is not None:
            try:
                proxy.destroy()
            except Exception:  # the toxiproxy server may already be gone at run close
                pass
