"""``python -m harness.build`` / ``reconverge build``: ensure or list cached builds, images."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from harness.errors import ReconvergeError

USAGE = "usage: reconverge build ensure [component[@version] ...] | list | images [v1.N.P]"


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 on success; 2 with one line on stderr on any failure."""
    from harness.build import cache, components, progress, recipes

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("ensure", "list", "images"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if args[0] == "list":
            for m in cache.cached():
                print(
                    f"{m['component']:<24} {m['version']:<10} {m['go']:<12} "
                    f"{m.get('build_seconds', '?')} s  {m['dir']}"
                )
            return 0
        if args[0] == "images":
            return _images(args[1:])
        specs = args[1:] or list(components.DEFAULT_SET)
        parsed = [recipes.parse_spec(spec) for spec in specs]  # all names checked up front
        t0 = time.monotonic()
        for k, (component, version) in enumerate(parsed, 1):
            recipes.ensure(
                component,
                version,
                log=lambda s: print(f"build: {s}", flush=True),
                step=(k, len(parsed)),
            )
        total = progress.fmt_seconds(time.monotonic() - t0)
        print(f"build: {len(parsed)} components ready in {total}", flush=True)
        return 0
    except ReconvergeError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reconverge: build interrupted; nothing half-built was kept", file=sys.stderr)
        return 130


def _images(args: list[str]) -> int:
    """Every control-plane archive plus the busybox pod image: one ``ref<TAB>path`` a line.

    Builds missing binaries first (the same ``ensure`` as above), so this is also what a
    bootstrap runs to have a node image's inputs ready.
    """
    from harness.build.components import DEFAULTS
    from harness.images import busybox, control_plane

    version = args[0] if args else DEFAULTS["kubernetes"]
    log = lambda s: print(f"build: {s}", file=sys.stderr, flush=True)  # noqa: E731
    for a in [*control_plane.archives(version, log=log), busybox.archive(log=log)]:
        print(f"{a.ref}\t{a.path}", flush=True)
    return 0
