"""containerd release tags: semver order, ranges, and the list the Go module proxy serves.

Why the module proxy and not GitHub: builds come from the proxy (harness/build), and it
only serves tags (``@main`` or an untagged commit is refused), so the tags it lists are
exactly the points a matrix or a bisect can build. Ordering is semver, not date: a patch
on an older branch (v2.1.9) sorts before the next minor's first release (v2.2.1) even when
it was published later, so a range across branches is an approximation of history.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from harness.errors import ReconvergeError

MODULE = "github.com/containerd/containerd/v2"

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


@dataclass(frozen=True, order=False)
class Tag:
    """One parsed version; ``key`` orders it the way semver does (a release after its rcs)."""

    text: str
    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    @property
    def release(self) -> bool:
        return not self.pre

    @property
    def key(self) -> tuple:
        # semver §11: numeric identifiers compare numerically and sort before alphanumeric
        # ones; a version without a pre-release sorts after every pre-release of it
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)


def parse(text: str) -> Tag:
    """``v2.1.5`` / ``2.1.5`` / ``v2.2.0-rc.1`` -> :class:`Tag`; else one clear error."""
    m = _SEMVER.match(text.strip())
    if m is None:
        raise ReconvergeError(
            f"{text!r} is not a version (expected e.g. v2.1.5 or v2.2.0-rc.1)",
            fix="give release tags as the module proxy lists them",
        )
    pre = tuple(int(p) if p.isdigit() else p for p in (m["pre"] or "").split(".") if p)
    return Tag(text.strip(), int(m["major"]), int(m["minor"]), int(m["patch"]), pre)


def ordered(tags: list[str], *, pre: bool = False) -> list[str]:
    """Semver order, duplicates and unparsable entries dropped; pre-releases only if ``pre``."""
    seen: dict[tuple, Tag] = {}
    for text in tags:
        try:
            t = parse(text)
        except ReconvergeError:
            continue
        if t.release or pre:
            seen.setdefault(t.key, t)
    return [seen[k].text for k in sorted(seen)]


def between(tags: list[str], a: str, b: str, *, pre: bool = False) -> list[str]:
    """The tags from ``a`` to ``b`` inclusive, ascending, whichever of the two is older.

    ``a`` and ``b`` must be among ``tags`` (a bisect over tags can only name served tags).
    """
    order = ordered(tags, pre=True)
    by_key = {parse(t).key: t for t in order}
    for end in (a, b):
        if parse(end).key not in by_key:
            near = ", ".join(ordered(tags, pre=pre)[-8:])
            raise ReconvergeError(
                f"{end} is not a tag the module proxy serves for {MODULE}",
                fix=f"pick one of the served tags (newest: {near})",
            )
    lo, hi = sorted((parse(a).key, parse(b).key))
    inside = [t for t in order if lo <= parse(t).key <= hi]
    ends = {by_key[lo], by_key[hi]}
    return [t for t in inside if t in ends or pre or parse(t).release]


def go_env() -> dict[str, str]:
    """The environment the builds use (same GOPROXY, same caches), so a listed tag builds."""
    from harness.build import recipes

    return recipes._go_env()


def proxy_tags(module: str = MODULE, *, timeout: float = 60.0) -> list[str]:
    """Every version ``go list -m -versions`` reports for ``module`` (semver order, with rcs).

    Runs outside any module (``GOFLAGS=-mod=mod`` would need a go.mod), with the build
    environment's GOPROXY; a proxy that does not answer is one clear error.
    """
    env = go_env()
    env["GOFLAGS"] = ""
    env.setdefault("GO111MODULE", "on")
    try:
        out = subprocess.run(
            ["go", "list", "-m", "-versions", module],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=os.path.expanduser("~"),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReconvergeError(
            f"cannot list {module} tags: {exc}", fix="install Go and check GOPROXY"
        ) from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReconvergeError(
            f"cannot list {module} tags from {env.get('GOPROXY')}: {last}",
            fix="check the network and GOPROXY (go env GOPROXY)",
        )
    fields = out.stdout.split()
    return ordered(fields[1:], pre=True)


def compare_url(older: str, newer: str) -> str:
    """The upstream commits between two tags, to read after a bisect."""
    return f"https://github.com/containerd/containerd/compare/{older}...{newer}"
