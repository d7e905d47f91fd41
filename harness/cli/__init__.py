"""The ``reconverge`` command.

Every subcommand turns a :class:`~harness.errors.ReconvergeError` (and a malformed
failpoint term) into one line on stderr and exit code 2; Ctrl-C cleans up and exits 130.
Heavy imports happen inside the subcommand that needs them so ``reconverge doctor`` and
``reconverge janitor`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from harness.errors import ReconvergeError


def _cmd_doctor(args: argparse.Namespace) -> int:
    from harness.cli import doctor

    return doctor.main()


def _cmd_janitor(args: argparse.Namespace) -> int:
    from harness import run

    if not args.sweep:
        print("reconverge janitor: nothing to do (use --sweep)", file=sys.stderr)
        return 2
    try:
        report = run.sweep()
    except Exception as exc:  # sweep() never raises; if it ever does, still one line
        print(f"janitor: sweep failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    left = f"; {len(report.failures)} thing(s) left" if report.failures else ""
    print(f"janitor: {len(report.runs)} dead run(s) swept under {run.run_root()}{left}")
    return 0 if report.clean else 1


def _cmd_build(args: argparse.Namespace) -> int:
    if list(args.rest[:1]) == ["kind-node"]:
        from harness.kind import build_cli

        return build_cli.main(list(args.rest[1:]))
    try:
        from harness import build
    except ImportError as exc:  # pragma: no cover - build ships with the harness
        raise ReconvergeError(f"build support unavailable: {exc}") from None
    return int(build.main(list(args.rest)))


def _cmd_timeline(args: argparse.Namespace) -> int:
    from harness.report import commands

    return commands.timeline_cmd(args.path, tail=args.tail)


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report import commands

    return commands.report_cmd(args.path, output=args.output, trace=args.trace)


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.cli import runner

    return runner.run(args)


def _cmd_repro(args: argparse.Namespace) -> int:
    from harness.cli import runner

    return runner.repro(args)


def _cmd_up(args: argparse.Namespace) -> int:
    try:
        from harness.cli import up
    except ImportError:
        raise ReconvergeError("reconverge up is not available in this version") from None
    return int(up.main(args))


def _version() -> str:
    """The installed distribution's version (a source tree without metadata says so)."""
    from importlib import metadata

    try:
        return metadata.version("reconverge")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(
        prog="reconverge",
        description="Fault-injection harness for container runtimes and Kubernetes controllers.",
    )
    p.add_argument("--version", action="version", version=f"reconverge {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("doctor", help="show which component a run would use; exit 2 if unusable")
    d.set_defaults(fn=_cmd_doctor)

    j = sub.add_parser(
        "janitor", help="clean up what dead runs left behind; exit 1 when something is left"
    )
    j.add_argument("--sweep", action="store_true", help="sweep every run whose owner is gone")
    j.set_defaults(fn=_cmd_janitor)

    b = sub.add_parser("build", help="build Go third-party servers into the cache")
    b.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        help="e.g. ensure containerd@v2.1.5, or kind-node (the kind node image)",
    )
    b.set_defaults(fn=_cmd_build)

    what = "a failure bundle (journal.jsonl), a run or artifacts dir (journal/*.jsonl) or a file"
    t = sub.add_parser(
        "timeline", help="print the T1…Tn table of a bundle or run dir; exit 2 if none"
    )
    t.add_argument("path", metavar="BUNDLE_OR_RUN_DIR", help=what)
    t.add_argument("--tail", type=int, default=None, help="only the last N rows (T-numbers kept)")
    t.set_defaults(fn=_cmd_timeline)

    rep = sub.add_parser("report", help="write the HTML report + trace JSON of a bundle or run dir")
    rep.add_argument("path", metavar="BUNDLE_OR_RUN_DIR", help=what)
    rep.add_argument("-o", "--output", default=None, help="HTML file (default: <dir>/report.html)")
    rep.add_argument("--trace", default=None, help="trace JSON file (default: beside the HTML)")
    rep.set_defaults(fn=_cmd_report)

    r = sub.add_parser("run", help="run suites (optionally repeated) and print the verdict table")
    r.add_argument("select", nargs="*", help="suite paths or pytest node ids (default: suites/)")
    r.add_argument("--repeat", type=int, default=1, help="run N times; verdicts must be identical")
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--backend", default=None)
    r.add_argument("--artifacts", default=None)
    r.set_defaults(fn=_cmd_run)

    rp = sub.add_parser("repro", help="replay one case from the line a failure printed")
    rp.add_argument("spec", help="<nodeid>@<seed> as printed by a failing case")
    rp.set_defaults(fn=_cmd_repro)

    u = sub.add_parser("up", help="start containerd (or --kube kind) + toxiproxy in the foreground")
    u.add_argument("--namespace", default="reconverge")
    u.add_argument("--containerd", default=None, help="containerd binary or version (v2.1.5)")
    u.add_argument(
        "--kube",
        choices=("kind",),
        default=None,
        help="bring up a Kubernetes cluster instead: kind (nodes from the local node image)",
    )
    u.add_argument("--nodes", type=int, default=1, help="kind: number of nodes (default 1)")
    u.set_defaults(fn=_cmd_up)
    return p


def _check_env_failpoints() -> None:
    """Validate ``RECONVERGE_FAILPOINTS`` up front so a typo fails before anything starts."""
    import os

    if not os.environ.get("RECONVERGE_FAILPOINTS"):
        return
    import failpoints

    failpoints.load_env()


def _run(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        _check_env_failpoints()
        return fn(args)
    except ReconvergeError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:
        # FailpointSyntaxError is a ValueError with a one-line message
        if type(exc).__name__ == "FailpointSyntaxError":
            print(f"reconverge: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        from harness import run

        run._close_all()
        print("reconverge: interrupted; cleaned up", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reconverge`` console script."""
    args = build_parser().parse_args(argv)
    return _run(args.fn, args)
