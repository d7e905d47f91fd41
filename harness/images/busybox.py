"""A plain pod image: Debian's static busybox with every applet linked, ``sh`` by default.

Why: pods in the kind suites need *some* image to run under runc (the stub RuntimeClass
ignores the image, a runc pod does not), and nothing can be pulled. The sandbox image of
:mod:`harness.providers.sandbox_image` is only ``/bin/busybox`` with a ``sleep``
entrypoint; a pod image must run ``command: [sleep, "3600"]`` or ``[sh, -c, …]`` by name,
so this one has ``/bin/sh``, ``/bin/sleep``, … as symlinks to ``/bin/busybox`` (the list
is what that busybox says it implements, ``busybox --list-full``) and a ``PATH``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from harness import binaries
from harness.images import oci
from harness.images.store import PATH_ENV, Archive, archive_for

NAME = "reconverge.local/busybox:1"
CONFIG = {"Cmd": ["sh"], "Env": [PATH_ENV]}


def applet_links(busybox: Path) -> dict[str, oci.Entry]:
    """``bin/sh`` -> ``/bin/busybox`` and so on, for every applet this binary has."""
    out = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return {
        path: oci.Entry(mode=0o777, link="/bin/busybox")
        for path in out.split()
        if path and path != "bin/busybox"
    }


def archive(
    name: str = NAME, *, busybox: Path | None = None, log: Callable[[str], None] = print
) -> Archive:
    """The cached archive of the busybox pod image (built on first use)."""
    path = Path(busybox or binaries.require("busybox"))
    return archive_for(
        name, {"bin/busybox": (path, 0o755)}, CONFIG, entries=applet_links(path), log=log
    )
