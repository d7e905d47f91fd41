"""The warm shim binary: ``launcher.c`` compiled once into the versioned cache.

Why a cache entry keyed by the source's hash: the launcher is what containerd execs as
``containerd-shim-stub-v2`` when a fork server serves the run, so it must exist before
containerd starts; compiling it costs ~0.3 s of gcc, paid once per source version (by
``ci/bootstrap`` or lazily by the first containerd that wants it), never per run. The file
is found through this package's directory, which works in the editable install and in the
kind node's read-only copy alike (the node never uses it: its shims take the cold path).

``python -m harness.shim.launcher`` builds it if needed and prints its path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.build import cache
from harness.errors import ReconvergeError

SOURCE = Path(__file__).with_name("launcher.c")
BINARY = "containerd-shim-stub-v2"
COMPONENT = "shim-launcher"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-std=c11")


def source_hash() -> str:
    """16 hex of sha256 over the source and the compiler flags.

    Raises:
        ReconvergeError: the source is not installed (a wheel built without it).
    """
    try:
        h = hashlib.sha256(SOURCE.read_bytes())
    except OSError as exc:
        raise ReconvergeError(
            f"the warm shim launcher's source {SOURCE} is missing ({exc.strerror})",
            fix="reinstall reconverge (package data harness/shim/launcher.c)",
        ) from None
    h.update("\0".join(CFLAGS).encode())
    return h.hexdigest()[:16]


def entry_dir() -> Path:
    """``<cache>/bin/shim-launcher/<hash>-<arch>/``: put it first on containerd's PATH."""
    return cache.root() / "bin" / COMPONENT / f"{source_hash()}-{cache.arch()}"


def locate() -> Path | None:
    """The compiled launcher for the current source, or None when not built yet."""
    path = entry_dir() / BINARY
    return path if os.access(path, os.X_OK) else None


def ensure() -> Path:
    """The compiled launcher, compiling it first when this source has no cache entry.

    Concurrent callers (two xdist workers) each compile to a temporary file and rename it
    into place; the last rename wins and both files are the same program.

    Raises:
        ReconvergeError: no C compiler, or it refused the source (its output in the message).
    """
    found = locate()
    if found is not None:
        return found
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise ReconvergeError(
            "no C compiler for the warm shim launcher", fix="apt-get install gcc (./ci/bootstrap)"
        )
    target = entry_dir()
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".launcher-", dir=target)
    os.close(fd)
    try:
        out = subprocess.run(
            [cc, *CFLAGS, "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise ReconvergeError(
                f"compiling {SOURCE.name} failed: {(out.stderr or out.stdout).strip()[-500:]}",
                fix="check the compiler installation (./ci/bootstrap)",
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, target / BINARY)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target / BINARY


def main() -> int:
    """Build if needed, print the path; one line and exit 2 on failure."""
    try:
        print(ensure())
    except ReconvergeError as exc:
        print(f"shim launcher: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
