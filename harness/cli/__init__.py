"""The ``reconverge`` command.

Every subcommand turns a :class:`~harness.errors.ReconvergeError` (and a malformed
failpoint term) into one line on stderr and its exit code (2; 1 for a missed deadline);
Ctrl-C cleans up and exits 130. The exit codes are listed once, in :data:`EXIT_CODES`,
which every ``--help`` shows.
Heavy imports happen inside the subcommand that needs them so ``reconverge doctor`` and
``reconverge janitor`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from harness.errors import ReconvergeError

EXIT_CODES = """\
exit codes:
  0    ok: every required component usable, every case passed, verdicts identical
       across repeats, nothing left behind; up: stopped with Ctrl-C or SIGTERM
  1    a check failed: a case failed or its verdict was wrong, verdicts differed
       across repeats, the janitor left something behind, a deadline passed, the
       kind node image is stale (build kind-node --check)
  2    the environment or the input is wrong: a required component is missing or
       the user is not root (doctor), a bad option or argument, a malformed
       RECONVERGE_FAILPOINTS, a missing bundle, pytest collected nothing or could
       not collect (run, repro)
  130  interrupted: Ctrl-C (or SIGTERM to run/repro); what was started is cleaned up
"""

PASSTHROUGH = """\
pytest options: everything after "--" goes to pytest unchanged, e.g.
  reconverge run suites -- -k plumbing -x --log-cli-level=INFO
  reconverge repro 'suites/test_x.py::test_y[buggy]@1234' -- -s
PYTEST_ADDOPTS is honoured too (pytest reads it; every repeat inherits it):
  PYTEST_ADDOPTS='--reconverge-strict' reconverge run --repeat 3 suites
"""

# Subcommands whose arguments after "--" are pytest's (see PASSTHROUGH).
_PASSTHROUGH_CMDS = ("run", "repro")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from harness.cli import doctor

    return doctor.main(as_json=args.json)


def _cmd_janitor(args: argparse.Namespace) -> int:
    from harness import run

    if args.dry_run:
        return _janitor_dry_run()
    if not args.sweep:
        print("reconverge janitor: nothing to do (use --sweep or --dry-run)", file=sys.stderr)
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


def _janitor_dry_run() -> int:
    """What ``--sweep`` would undo, removing nothing; exit 0 (even when something is listed)."""
    from harness import janitor, run

    root = run.run_root()
    plan = janitor.plan_sweep(root, owner_alive=run._owner_alive)
    for line in plan.lines():
        print(line)
    live = f"; {len(plan.live)} live run(s) left alone" if plan.live else ""
    print(
        f"janitor: dry run: {len(plan.dead)} dead run(s) would be swept under {root}{live};"
        " nothing was removed"
    )
    return 0


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
    """The argument parser (exposed for tests and docs; every option has help text)."""
    p = argparse.ArgumentParser(
        prog="reconverge",
        description="Fault-injection harness for container runtimes and Kubernetes controllers.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"reconverge {_version()}")
    sub = p.add_subparsers(
        dest="cmd", required=True, metavar="COMMAND", help="one of the subcommands below"
    )

    def command(name: str, help_: str, *, epilog: str = EXIT_CODES) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    d = command("doctor", "show which component a run would use; exit 2 if unusable (or not root)")
    d.add_argument(
        "--json",
        action="store_true",
        help="print the rows as one JSON document (same facts, same exit code)",
    )
    d.set_defaults(fn=_cmd_doctor)

    j = command("janitor", "clean up what dead runs left behind; exit 1 when something is left")
    mode = j.add_mutually_exclusive_group()
    mode.add_argument("--sweep", action="store_true", help="sweep every run whose owner is gone")
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="list what --sweep would remove, remove nothing; exit 0",
    )
    j.set_defaults(fn=_cmd_janitor)

    b = command("build", "build Go third-party servers (or the kind node image) into the cache")
    b.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="ensure [COMPONENT[@VERSION] …], list, images [v1.N.P]; or kind-node [--check] "
        "[--rootfs-only] (the kind node image)",
    )
    b.set_defaults(fn=_cmd_build)

    what = "a failure bundle (journal.jsonl), a run or artifacts dir (journal/*.jsonl) or a file"
    t = command("timeline", "print the T1…Tn table of a bundle or run dir; exit 2 if none")
    t.add_argument("path", metavar="BUNDLE_OR_RUN_DIR", help=what)
    t.add_argument(
        "--tail", type=int, default=None, metavar="N", help="only the last N rows (T-numbers kept)"
    )
    t.set_defaults(fn=_cmd_timeline)

    rep = command("report", "write the HTML report + trace JSON of a bundle or run dir")
    rep.add_argument("path", metavar="BUNDLE_OR_RUN_DIR", help=what)
    rep.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="HTML file (default: <dir>/report.html)",
    )
    rep.add_argument(
        "--trace", default=None, metavar="FILE", help="trace JSON file (default: beside the HTML)"
    )
    rep.set_defaults(fn=_cmd_report)

    r = command(
        "run",
        "run suites (optionally repeated) and print the verdict table",
        epilog=PASSTHROUGH + "\n" + EXIT_CODES,
    )
    r.add_argument(
        "select",
        nargs="*",
        metavar="SELECT",
        help="suite paths or pytest node ids (default: suites)",
    )
    r.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run N times; verdicts must be identical (exit 1 when they differ)",
    )
    r.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="SEED",
        help="seed of every repeat (--reconverge-seed); default: a fresh one per run",
    )
    r.add_argument(
        "--backend",
        default=None,
        choices=("process", "container"),
        help="how toxiproxy runs (--reconverge-backend): a local process (default) "
        "or a locally built container",
    )
    r.add_argument(
        "--artifacts",
        default=None,
        metavar="DIR",
        help="keep DIR/repeat-<k>/ (verdicts.json, failure bundles) and DIR/report.html; "
        "default: a temporary directory",
    )
    r.set_defaults(fn=_cmd_run, pytest_args=[])
    _usage_with_passthrough(r)

    rp = command(
        "repro",
        "replay one case from the line a failure printed",
        epilog=PASSTHROUGH + "\n" + EXIT_CODES,
    )
    rp.add_argument(
        "spec", metavar="NODEID@SEED", help="<nodeid>@<seed> as printed by a failing case"
    )
    rp.set_defaults(fn=_cmd_repro, pytest_args=[])
    _usage_with_passthrough(rp)

    u = command("up", "start containerd (or --kube kind) + toxiproxy in the foreground")
    u.add_argument(
        "--namespace",
        default="reconverge",
        help="containerd namespace of the printed ctr lines (default: reconverge)",
    )
    u.add_argument(
        "--containerd",
        default=None,
        metavar="BINARY_OR_VERSION",
        help="containerd binary path, or a version built into the cache (v2.1.5); "
        "default: Debian's 1.6.20",
    )
    u.add_argument(
        "--kube",
        choices=("kind",),
        default=None,
        help="bring up a Kubernetes cluster instead: kind (nodes from the local node image)",
    )
    u.add_argument(
        "--nodes", type=int, default=1, metavar="N", help="kind: number of nodes (default 1)"
    )
    u.set_defaults(fn=_cmd_up)
    __import__("harness.matrix.cli", fromlist=["register"]).register(sub)  # matrix, bisect
    __import__("harness.explore.cli", fromlist=["register"]).register(sub)  # explore, merge
    return p


def _usage_with_passthrough(parser: argparse.ArgumentParser) -> None:
    """Append ``[-- PYTEST_ARGS ...]`` to the generated usage line (no hand-kept copy)."""
    usage = parser.format_usage().strip().removeprefix("usage: ")
    parser.usage = f"{usage} [-- PYTEST_ARGS ...]"


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``run …/repro … -- <pytest args>``: our arguments, then pytest's (else no split).

    Why split before argparse: after ``--`` argparse hands every token to a ``nargs='*'``
    positional that has not consumed anything yet, or rejects them when it has, so
    ``run suites -- -k x`` would fail; other subcommands keep ``--`` (a file named ``-x``).
    """
    args = list(argv)
    if args and args[0] in _PASSTHROUGH_CMDS and "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1 :]
    return args, []


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
    ours, pytest_args = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    if pytest_args:
        args.pytest_args = pytest_args
    return _run(args.fn, args)
