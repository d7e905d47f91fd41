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
from collections import Counter
from pathlib import Path

from harness.errors import ReconvergeError

# pytest's exit codes -> ours (harness.cli.EXIT_CODES): 1 a case failed (or pytest itself
# broke), 2 the input was wrong (collection error, bad pytest option, nothing collected).
_FROM_PYTEST = {0: 0, 1: 1, 2: 2, 3: 1, 4: 2, 5: 2}


def exit_code(pytest_code: int) -> int:
    """Our exit code for a pytest exit code; a child killed by a signal is a failure (1)."""
    return _FROM_PYTEST.get(pytest_code, 1)


def _passthrough(args: argparse.Namespace) -> list[str]:
    """pytest's own arguments (after ``--``), appended last so they can override ours."""
    return list(getattr(args, "pytest_args", None) or [])


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
    return exit_code(code)


def _verdict_keys(path: Path) -> dict[str, str]:
    """``case key -> outcome`` of one repeat's verdicts.json (the shape is harness.verdict's)."""
    from harness import verdict

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {verdict.case_key(r): r["outcome"] for r in verdict.rows(data)}


def k_of_n(outcomes: list[str | None]) -> str:
    """``CAUGHT 3/3`` or ``CAUGHT 2/3, MISSED 1/3``: what each repeat concluded."""
    n = len(outcomes)
    counts = Counter(o or "absent" for o in outcomes)
    return ", ".join(f"{o} {k}/{n}" for o, k in counts.most_common())


def _repeat_report(art: Path, results: list[dict[str, str]], args: argparse.Namespace) -> None:
    """``<artifacts>/report.html``: k/n per verdict, each repeat's page linked, and the
    swimlanes of the first repeat whose verdicts differ from the first one's (else repeat 1).
    """
    from harness.journal import merge
    from harness.report import bundle

    keys = sorted(set().union(*results))
    repeats = {key: [r.get(key) for r in results] for key in keys}
    pick = next((i for i, r in enumerate(results) if r != results[0]), 0)
    records = merge.load(art / f"repeat-{pick + 1}")
    links = {
        f"repeat {i + 1}": f"repeat-{i + 1}/report.html"
        for i in range(len(results))
        if (art / f"repeat-{i + 1}" / "report.html").is_file()
    }
    meta = {
        "seed": args.seed,
        "title": f"reconverge run: {len(results)} repeats, swimlanes of repeat {pick + 1}",
        "settings": {"backend": args.backend or "default", "select": " ".join(args.select)},
    }
    if not records:
        return
    page = bundle.write_report(
        art, records, title=meta["title"], meta=meta, repeats=repeats, links=links
    )
    print(f"report: {page}")


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
            code = _pytest([*select, *extra, *_passthrough(args)])
            worst = max(worst, code)
            results.append(_verdict_keys(art / "verdicts.json"))
        if args.artifacts and args.repeat > 1:
            _repeat_report(Path(args.artifacts), results, args)
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
            outcomes = [r.get(key) for r in results]
            print(f"  {key}: {k_of_n(outcomes)} (" + ", ".join(map(str, outcomes)) + ")")
        return 1
    print(f"\nidentical verdicts {n}/{n} for {len(first)} case(s)")
    return worst


def repro(args: argparse.Namespace) -> int:
    """Replay ``<nodeid>@<seed>`` exactly as the failure printed it."""
    spec: str = args.spec
    if spec.endswith(".json"):  # a saved explore schedule (harness/explore/regress.py)
        return __import__("harness.explore.regress", fromlist=["repro"]).repro(spec)
    nodeid, sep, seed = spec.rpartition("@")
    if not sep or not seed.isdigit() or not nodeid:
        raise ReconvergeError(
            f"bad repro spec {spec!r}: expected '<nodeid>@<seed>' as printed by a failing case"
        )
    base = [nodeid, f"--reconverge-seed={seed}", "-p", "no:cacheprovider", "-v"]
    return _pytest([*base, *_passthrough(args)])
