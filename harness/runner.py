"""``reconverge run`` and ``reconverge repro``: pytest underneath, verdicts on top.

Why pytest as the engine: suites are ordinary pytest modules, so the command line, CI and
an engineer's ``pytest`` all run the very same cases; this module only adds repetition
(verdicts must be identical on every repeat — a flake is a bug) and replay by seed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import ReconvergeError


def _pytest(args: list[str]) -> int:
    """Run pytest as a child; SIGTERM to us is passed on, so its fixtures tear down.

    Why: a CI runner or ``kill`` stops ``reconverge run`` with SIGTERM, which is not sent to
    the child; without forwarding, the pytest underneath would keep its containerd, shims
    and proxies alive after we are gone.
    """
    cmd = [sys.executable, "-m", "pytest", *args]
    proc = subprocess.Popen(cmd)
    stopped: list[int] = []

    def forward(signum: int, frame: object) -> None:
        stopped.append(signum)
        proc.send_signal(signum)

    old = signal.signal(signal.SIGTERM, forward)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the child too (same process group)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
    if stopped:
        raise KeyboardInterrupt(f"signal {stopped[0]}")
    return code


def _verdict_keys(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {f"{v['suite']}::{v['case']}[{v['variant']}|{v['fault']}]": v["outcome"] for v in data}


def run(args: argparse.Namespace) -> int:
    """Run the selected suites ``--repeat`` times and compare verdicts across repeats."""
    select = list(args.select) or ["suites"]
    if args.repeat < 1:
        raise ReconvergeError("--repeat must be at least 1")
    results: list[dict[str, str]] = []
    worst = 0
    with tempfile.TemporaryDirectory(prefix="rcv-verdicts-") as tmp:
        for i in range(args.repeat):
            art = Path(args.artifacts or tmp) / f"repeat-{i + 1}"
            extra = ["-q", "-p", "no:cacheprovider", f"--reconverge-artifacts={art}"]
            if args.seed is not None:
                extra.append(f"--reconverge-seed={args.seed}")
            if args.backend:
                extra.append(f"--reconverge-backend={args.backend}")
            print(f"== repeat {i + 1}/{args.repeat}", flush=True)
            code = _pytest([*select, *extra])
            worst = max(worst, code)
            results.append(_verdict_keys(art / "verdicts.json"))
    if args.repeat > 1:
        return _compare(results, worst)
    return worst


def _compare(results: list[dict[str, str]], worst: int) -> int:
    first = results[0]
    differing = sorted(
        key for key in set().union(*results) if len({r.get(key) for r in results}) > 1
    )
    n = len(results)
    if differing:
        print(f"\nverdicts differ across {n} repeats for {len(differing)} case(s):")
        for key in differing:
            print(f"  {key}: " + ", ".join(str(r.get(key)) for r in results))
        return 1
    print(f"\nidentical verdicts {n}/{n} for {len(first)} case(s)")
    return worst


def repro(args: argparse.Namespace) -> int:
    """Replay ``<nodeid>@<seed>`` exactly as the failure printed it."""
    spec: str = args.spec
    nodeid, sep, seed = spec.rpartition("@")
    if not sep or not seed.isdigit() or not nodeid:
        raise ReconvergeError(
            f"bad repro spec {spec!r}: expected '<nodeid>@<seed>' as printed by a failing case"
        )
    return _pytest([nodeid, f"--reconverge-seed={seed}", "-p", "no:cacheprovider", "-v"])
