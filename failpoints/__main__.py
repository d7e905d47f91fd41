"""``python -m failpoints check 'name=spec;…'``: validate specs before a run uses them.

Prints the canonical form and exits 0, or prints the one-line syntax error on stderr and
exits 2. Without an argument it checks ``$RECONVERGE_FAILPOINTS``.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import FailpointSyntaxError
from .grammar import format_assignments, parse_assignments
from .sources import ENV_VAR


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m failpoints", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate name=spec;… and print it canonically")
    check.add_argument("specs", nargs="?", help=f"default: the value of ${ENV_VAR}")
    args = parser.parse_args(argv)

    text, source = args.specs, None
    if text is None:
        text, source = os.environ.get(ENV_VAR, ""), ENV_VAR
    try:
        specs = parse_assignments(text, source=source)
    except FailpointSyntaxError as exc:
        print(f"failpoints: {exc}", file=sys.stderr)
        return 2
    print(format_assignments(specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
