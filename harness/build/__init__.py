"""Go-built third-party servers in a versioned cache.

Why a cache of our own: toxiproxy, etcd 3.6, kube-apiserver and containerd 2.x are not
shipped by any registry this project may use, so they are built from the Go module proxy
once and kept under ``$RECONVERGE_CACHE/bin/<component>/<version>-go<gover>-<arch>/`` with a
``manifest.json``. A cache hit never runs ``go``; nothing built lives in the repository.
"""

from harness.build.cache import binaries_dir, cached, locate, manifest
from harness.build.components import DEFAULT_SET, DEFAULTS, KUBERNETES_BINARIES
from harness.build.main import main
from harness.build.recipes import ensure

__all__ = [
    "DEFAULTS",
    "DEFAULT_SET",
    "KUBERNETES_BINARIES",
    "binaries_dir",
    "cached",
    "ensure",
    "locate",
    "main",
    "manifest",
]
