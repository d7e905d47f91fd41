"""``reconverge matrix`` and ``reconverge bisect``: pytest underneath, releases on top.

``matrix`` builds the asked releases (once, with the build heartbeat) and runs the given
suites with ``--reconverge-containerd``; the table comes from the plugin
(:mod:`harness.matrix.plugin`) and is kept in ``<artifacts>/matrix.json``.

``bisect`` lists the tags between ``--good`` and ``--bad`` from the module proxy, then
runs one case only on the tags binary search needs, ``k`` times each in a fresh pytest (a
fresh containerd and run each time), and names the first tag whose upstream behaviour
differs from the older side, with the upstream compare URL to read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ReconvergeError
from harness.matrix import bisect, tags, versions

DEFAULT_K = 3


BISECT_EXIT = "  3    bisect: INCONCLUSIVE (a split k-of-n, no observation, or a third behaviour)\n"


def _command(subparsers: Any, name: str, help_: str, epilog: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def register(subparsers: Any) -> None:
    """Add ``matrix`` and ``bisect`` to the ``reconverge`` command (harness/cli)."""
    from harness.cli import EXIT_CODES

    m = _command(
        subparsers,
        "matrix",
        "run containerd_matrix cases on several containerd releases; print the release table",
        EXIT_CODES,
    )
    m.add_argument("paths", nargs="+", help="suite paths or node ids")
    m.add_argument(
        "--containerd",
        required=True,
        help="releases, comma separated: 1.6.20 (the system's) and v2 tags, e.g. v2.1.4,v2.4.2",
    )
    m.add_argument("--artifacts", default=None, help="directory for verdicts.json, matrix.json")
    m.add_argument("--seed", type=int, default=None, help="session seed (--reconverge-seed)")
    m.set_defaults(fn=matrix_cmd)

    b = _command(
        subparsers,
        "bisect",
        "find the first containerd tag that changes a case's upstream behaviour",
        EXIT_CODES + BISECT_EXIT,
    )
    b.add_argument("case", help="path::test_function (optionally [param filter]) of one case")
    b.add_argument("--good", required=True, help="a tag with the good behaviour, e.g. v2.1.5")
    b.add_argument("--bad", required=True, help="a tag with the bad behaviour, e.g. v2.1.4")
    b.add_argument("--pre", action="store_true", help="include pre-releases (rc, beta) between")
    b.add_argument(
        "-k",
        "--repeat",
        dest="k",
        type=int,
        default=DEFAULT_K,
        help=f"runs per tag; a split k-of-n is INCONCLUSIVE (default {DEFAULT_K})",
    )
    b.add_argument("--artifacts", default=None, help="directory for every run's artifacts")
    b.add_argument("--seed", type=int, default=None, help="seed of every run (--reconverge-seed)")
    b.set_defaults(fn=bisect_cmd)


def _pytest(args: list[str], *, log: Path | None = None) -> int:
    """pytest as a child (SIGTERM forwarded by the runner's helper when shown live)."""
    if log is None:
        from harness.cli import runner

        return runner._pytest(args)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            return proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait(60)
            raise


def _common(labels: str, artifacts: Path, seed: int | None) -> list[str]:
    args = [
        f"--reconverge-containerd={labels}",
        f"--reconverge-artifacts={artifacts}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    return [*args, f"--reconverge-seed={seed}"] if seed is not None else args


def _artifacts(given: str | None, prefix: str) -> Path:
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=prefix))


def matrix_cmd(args: argparse.Namespace) -> int:
    labels = versions.parse_list(args.containerd)
    for label in labels:
        versions.build_version(label)
    versions.ensure(labels)
    art = _artifacts(args.artifacts, "rcv-matrix-")
    from harness.cli.runner import exit_code

    code = exit_code(_pytest([*args.paths, *_common(",".join(labels), art, args.seed)]))
    doc = art / "matrix.json"
    if doc.is_file():
        print(f"matrix: table and cells in {doc}")
    else:
        print(f"matrix: no containerd_matrix case ran (nothing in {doc})", file=sys.stderr)
        return code or 2
    return code


def behaviour_of(doc: dict[str, Any]) -> str | None:
    """One run's upstream behaviour: every probe cell's, when they agree; else None.

    Several probe rows (two selected cases) that disagree give a combined text, which
    compares unequal to either side, so the search stops rather than guess.
    """
    seen = {c.get("case"): c.get("behaviour") for c in doc.get("cells", [])}
    seen = {k: v for k, v in seen.items() if v is not None}
    if not seen:
        return None
    values = set(seen.values())
    if len(values) == 1:
        return values.pop()
    return "; ".join(f"{k}: {v}" for k, v in sorted(seen.items()))


def _case_args(case: str) -> list[str]:
    """``path::fn[filter]`` -> ``["path::fn", "-k", "filter"]`` (param ids gain the release)."""
    if "[" in case and case.endswith("]"):
        node, _, rest = case.partition("[")
        return [node, "-k", rest[:-1]]
    return [case]


def bisect_cmd(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ReconvergeError(f"-k {args.k}: at least one run per tag", fix="e.g. -k 3")
    served = tags.proxy_tags()
    order = tags.between(served, args.good, args.bad, pre=args.pre)
    art = _artifacts(args.artifacts, "rcv-bisect-")
    print(
        f"bisect: {args.case}: {len(order)} tag(s) from {order[0]} to {order[-1]} "
        f"({'with' if args.pre else 'releases only, no'} pre-releases): {' '.join(order)}"
    )
    print(f"bisect: each tested tag runs k={args.k} time(s); artifacts in {art}")

    def observe(tag: str) -> list[str | None]:
        versions.ensure([tag])
        runs: list[str | None] = []
        for i in range(1, args.k + 1):
            where = art / tag / str(i)
            where.mkdir(parents=True, exist_ok=True)
            log = where / "pytest.log"
            code = _pytest([*_case_args(args.case), *_common(tag, where, args.seed)], log=log)
            try:
                doc = json.loads((where / "matrix.json").read_text())
            except (OSError, ValueError):
                doc = {}
            b = behaviour_of(doc)
            outcomes = ",".join(sorted({str(c.get("outcome")) for c in doc.get("cells", [])}))
            print(
                f"  {tag} run {i}/{args.k}: {b or 'no observation'} "
                f"({outcomes or 'no cell'}; pytest exit {code}; {log})",
                flush=True,
            )
            runs.append(b)
        return runs

    try:
        result = bisect.search(order, observe, k=args.k)
    except bisect.Inconclusive as exc:
        print(f"bisect: {exc.message}")
        if exc.fix:
            print(f"bisect: ({exc.fix})")
        return exc.exit_code
    good_is_newer = tags.parse(args.good).key > tags.parse(args.bad).key
    which = "good" if good_is_newer else "bad"
    print(
        f"bisect: first tag that changes the verdict: {result.newer} "
        f"({result.older}: {result.before} -> {result.newer}: {result.after}); "
        f"first {which} tag: {result.newer}"
    )
    print(f"bisect: read upstream: {tags.compare_url(result.older, result.newer)}")
    print(f"bisect: {len(result.steps)} tag(s) run, k={args.k} each")
    return 0
