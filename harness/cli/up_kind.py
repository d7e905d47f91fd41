"""``reconverge up --kube kind``: a kind cluster and a toxiproxy in front of its API server.

For reproducing by hand: prints the kubeconfig (direct), a second one that dials the
toxiproxy proxy (same certificate: the proxy listens on 127.0.0.1, which is in the API
server's SANs), ready-to-paste kubectl lines and a pod on the stub RuntimeClass; blocks
until Ctrl-C or SIGTERM, then the run's janitor removes the cluster, its network, the
dockerd and toxiproxy.
"""

from __future__ import annotations

import argparse
import signal
import threading

from harness import run as run_mod
from harness.kind import node_image
from harness.providers import toxiproxy
from harness.providers.kube import kubeconfig
from harness.providers.kube.kind import KindProvider


def main(args: argparse.Namespace) -> int:
    """Start, print, wait for a signal, clean up."""
    run = run_mod.start(purpose="up-kind")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        proxy_server = toxiproxy.start(run)
        print(f"run         {run.id} ({run.dir})", flush=True)
        print(f"kind        creating {args.nodes} node(s)… (logs in {run.dir}/logs)", flush=True)
        cluster = KindProvider().start(run, nodes=args.nodes)
        proxy = proxy_server.client.create(f"{run.id}-kube-api", cluster.address)
        via = run.path("kube", mkdir=True) / "kubeconfig-via-toxiproxy"
        kubeconfig.write(via, kubeconfig.with_server(cluster.creds, f"https://{proxy.listen}"))
        kc = cluster.kubeconfig
        bins = node_image.bundle_dir()
        kubectl = str(bins / "kubectl") if bins else "kubectl"
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items())
        print(f"cluster     {cluster.name}: {', '.join(cluster.nodes)} Ready ({timings})")
        print(f"memory      peak {cluster.peak_memory_bytes / 2**20:.0f} MiB during bring-up")
        print(f"api server  {cluster.creds.server}   kubeconfig {kc}")
        print(f"toxiproxy   http://{proxy_server.api}  proxy {proxy.name} {proxy.listen}")
        print(f"            kubeconfig through the proxy: {via}")
        print(f"docker      DOCKER_HOST={cluster.engine.host}")
        print("try:")
        print(f"  {kubectl} --kubeconfig {kc} get nodes")
        print(f"  {kubectl} --kubeconfig {kc} run s1 --image=reconverge.local/busybox:1 \\")
        print('    --image-pull-policy=Never --overrides=\'{"spec":{"runtimeClassName":')
        print('    "reconverge-stub"}}\'')
        print(f"  DOCKER_HOST={cluster.engine.host} docker exec {cluster.nodes[0]} \\")
        print("    ctr -n k8s.io tasks ls")
        print("Ctrl-C deletes the cluster and cleans up.", flush=True)
        stop.wait()
    finally:
        done = run.close()
        print(f"cleaned up: {len(done)} item(s)")
    return 0
