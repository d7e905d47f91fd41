"""``reconverge up``: a private containerd (+ toxiproxy) in the foreground, for reproducing by hand.

``reconverge up --kube kind`` brings up a kind cluster instead (:mod:`harness.cli.up_kind`).

Prints the socket, a ready-to-paste ``ctr`` line that runs a task on the stub shim, and
where toxiproxy's API listens; blocks until Ctrl-C or SIGTERM, then the run's janitor
removes everything — containerd, shims, sockets, the state directory.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from harness import run as run_mod
from harness.providers import toxiproxy
from harness.providers.containerd import STUB_RUNTIME, Containerd


def _binary(spec: str | None) -> Path | None:
    """``--containerd`` as a path, or a version built into the cache (v2.1.5)."""
    if not spec:
        return None
    if "/" in spec:
        return Path(spec)
    from harness import build

    return build.ensure("containerd", spec, log=lambda s: print(f"build: {s}", flush=True))


def main(args: argparse.Namespace) -> int:
    """Start, print, wait for a signal, clean up."""
    if getattr(args, "kube", None) == "kind":
        from harness.cli import up_kind

        return up_kind.main(args)
    run = run_mod.start(purpose="up")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        proxy_server = toxiproxy.start(run)
        ctd = Containerd(run, binary=_binary(args.containerd)).start()
        rootfs = run.path("rootfs", mkdir=True)
        ns = args.namespace
        ctr = f"ctr --address {ctd.address} -n {ns}"
        print(f"run         {run.id} ({run.dir})")
        print(f"containerd  {ctd.address}   (ttrpc {ctd.ttrpc_address})")
        print(f"toxiproxy   http://{proxy_server.api}")
        print("try:")
        print(f"  {ctr} run -d --null-io --runtime {STUB_RUNTIME} --rootfs {rootfs} t1")
        print(f"  {ctr} task ls")
        print(f"  {ctr} events        # in another terminal")
        print("Ctrl-C stops everything and cleans up.", flush=True)
        stop.wait()
    finally:
        done = run.close()
        print(f"cleaned up: {len(done)} item(s)")
    return 0
