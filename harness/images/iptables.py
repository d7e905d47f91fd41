"""This host's iptables, with its libraries, as files for the kube-proxy image.

Why: kube-proxy (iptables mode, the default) programs the node by running ``iptables``,
``iptables-save`` and ``iptables-restore`` *inside its own container* (privileged, host
network). Upstream ships them in a distroless-iptables base; nothing can be pulled here, and
Debian's iptables is dynamically linked, so the image gets the two multi-call binaries
(``xtables-nft-multi``, ``xtables-legacy-multi``), every shared library ``ldd`` names for
them and for the match/target extensions, the extensions themselves (``iptables -m comment``
dlopens ``libxt_comment.so``), and the usual command names as symlinks.

The plain names (``iptables``, ``iptables-restore``, …) point at the **nft** backend, the
Debian 12 default and what a bookworm node's own ``iptables`` uses; ``iptables-legacy*``
names are there for a node that runs legacy. Debian is merged-/usr, so files go under
``usr/lib…`` and ``lib``/``lib64`` are symlinks, as on the host (the ELF interpreter is
``/lib64/ld-linux-x86-64.so.2``).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

from harness.images import oci

MULTI = {"nft": "xtables-nft-multi", "legacy": "xtables-legacy-multi"}
COMMANDS = ("iptables", "iptables-save", "iptables-restore")
COMMANDS6 = ("ip6tables", "ip6tables-save", "ip6tables-restore")
EXTENSIONS = Path("/usr/lib/x86_64-linux-gnu/xtables")

_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def _in_image(path: str) -> str:
    """Host path -> path inside the image (merged /usr: /lib/x -> usr/lib/x)."""
    for top in ("/lib/", "/lib64/"):
        if path.startswith(top):
            return "usr" + path
    return path.lstrip("/")


def _libraries(objects: list[Path]) -> set[str]:
    out = subprocess.run(
        ["ldd", *map(str, objects)], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    return {m.group(1) for line in out.splitlines() if (m := _LDD_LINE.match(line))}


@functools.cache
def host_files() -> tuple[dict[str, tuple[Path, int]], dict[str, oci.Entry]] | None:
    """(files, symlinks) to add to an image, or None when this host has no iptables.

    ``files`` maps a path in the image to the host file whose bytes go there.
    """
    found = {mode: shutil.which(name, path="/usr/sbin:/sbin") for mode, name in MULTI.items()}
    if not all(found.values()) or not EXTENSIONS.is_dir() or not shutil.which("ldd"):
        return None
    binaries = [Path(p) for p in found.values() if p]
    extensions = sorted(EXTENSIONS.glob("*.so"))
    files: dict[str, tuple[Path, int]] = {
        f"usr/sbin/{name}": (Path(str(found[mode])).resolve(), 0o755)
        for mode, name in MULTI.items()
    }
    for ext in extensions:
        files[_in_image(str(ext))] = (ext.resolve(), 0o644)
    for lib in sorted(_libraries(binaries + extensions)):
        files[_in_image(lib)] = (Path(lib).resolve(), 0o755)
    links = {
        "lib": oci.Entry(mode=0o777, link="usr/lib"),
        "lib64": oci.Entry(mode=0o777, link="usr/lib64"),
    }
    for cmd in COMMANDS + COMMANDS6:
        links[f"usr/sbin/{cmd}"] = oci.Entry(mode=0o777, link=MULTI["nft"])
        for mode, multi in MULTI.items():
            stem, _, tail = cmd.partition("-")
            name = f"{stem}-{mode}" + (f"-{tail}" if tail else "")
            links[f"usr/sbin/{name}"] = oci.Entry(mode=0o777, link=multi)
    return files, links
