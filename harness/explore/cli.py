"""``reconverge explore`` and ``reconverge merge`` (registered by ``harness/cli``).

Imports stay light at module level: ``harness/cli`` builds its parser on every command, and
the explorer's Hypothesis, grpc and provider imports happen only when it runs.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from pathlib import Path
from typing import Any

from harness.errors import ReconvergeError

EPILOG = """\
exit codes:
  0    the search ended as expected: with a --bug, a failure was found, confirmed and
       shrunk; without, no failure; --check-determinism: identical decision journals
  1    the opposite (a failure with every fix on, none with a bug on, journals differ),
       or the world broke (three runs in a row raised)
  2    a bad option, an unknown bug switch, a missing component
  130  interrupted: what was started is cleaned up

A failure is saved as OUT/failures/<name>.json, the journal of its failing run as
OUT/failures/<name>.journal.jsonl; replay it with
  reconverge repro OUT/failures/<name>.json
and draw it (schedule tables, swimlanes, T1…Tn) with
  reconverge report OUT/failures/<name>.json
"""


def register(sub: Any) -> None:
    """Add ``explore`` and ``merge`` to the ``reconverge`` subcommands."""
    e = sub.add_parser(
        "explore",
        help="search fault schedules on real processes, shrink a failure, save it",
        description="Draw fault schedules (Hypothesis), run each against real containerd "
        "1.6.20 + the stub shim + the reference reconciler, check safety at every step and "
        "convergence + no leak after a heal; a failure is confirmed k of n, shrunk and saved.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument(
        "--world",
        choices=("sandbox", "claims"),
        default="sandbox",
        help="sandbox: containerd + stub shim + sandbox reconciler; claims: etcd + "
        "kube-apiserver + claim operator (default sandbox)",
    )
    e.add_argument(
        "--minutes", type=float, default=5.0, metavar="N", help="search budget (default 5)"
    )
    e.add_argument(
        "--shrink-minutes",
        type=float,
        default=6.0,
        metavar="N",
        help="budget for shrinking once a failure is found (default 6)",
    )
    e.add_argument("--seed", type=int, default=None, metavar="S", help="master seed")
    e.add_argument(
        "--max-examples",
        type=int,
        default=1000,
        metavar="K",
        help="at most K schedules drawn, cached repeats included (default 1000)",
    )
    e.add_argument(
        "--max-steps", type=int, default=8, metavar="N", help="steps per schedule (default 8)"
    )
    e.add_argument(
        "--sandboxes", type=int, default=1, choices=(1, 2), help="sandboxes per schedule"
    )
    e.add_argument(
        "--faults",
        default="",
        metavar="LIST",
        help="comma list of fault-menu prefixes (e.g. Shutdown.before,Delete.between); "
        "default: the whole menu",
    )
    e.add_argument("--no-toxics", action="store_true", help="no toxics in the schedules")
    e.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="SWITCH",
        help="turn a reference-reconciler bug switch on (repeatable); see bugs.py",
    )
    e.add_argument(
        "--shard",
        default="0/1",
        metavar="i/N",
        help="this process explores shard i of N of the seed space (default 0/1)",
    )
    e.add_argument(
        "--check-determinism",
        action="store_true",
        help="run the seed twice (no example database) and diff the decision journals",
    )
    e.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="decisions.jsonl, failures/, verdicts.json, junit.xml (default explore-out/<seed>)",
    )
    e.add_argument(
        "--database",
        default=None,
        metavar="DIR",
        help="Hypothesis example database shared by shards (default: none)",
    )
    e.add_argument(
        "--regressions",
        default=None,
        metavar="DIR",
        help="also write the shrunk failure there as a regression case (suites/regressions)",
    )
    e.add_argument(
        "--shrink",
        default=None,
        metavar="FILE",
        help="no search: confirm the saved schedule FILE and shrink it by deleting steps",
    )
    e.set_defaults(fn=explore_main)

    m = sub.add_parser(
        "merge",
        help="merge explore shard outputs into one verdicts.json, one JUnit and one report.html",
        description="Concatenate the verdicts.json of each DIR and write one verdicts.json "
        "and one junit.xml into --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("dirs", nargs="+", metavar="DIR", help="explore --out directories")
    m.add_argument("-o", "--out", default="merged", metavar="DIR", help="default: ./merged")
    m.set_defaults(fn=merge_main)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ReconvergeError(f"bad --shard {text!r}: expected i/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ReconvergeError(f"bad --shard {text!r}: need 0 <= i < N")
    return i, n


def _options(args: argparse.Namespace, seed: int) -> Any:
    from harness.explore import worlds
    from harness.explore.engine import Options

    if args.minutes <= 0 or args.max_examples < 1 or args.max_steps < 1:
        raise ReconvergeError("--minutes, --max-examples and --max-steps must be positive")
    opts = Options(
        seed=seed,
        world=args.world,
        minutes=args.minutes,
        max_examples=args.max_examples,
        max_steps=args.max_steps,
        sandboxes=args.sandboxes,
        faults=tuple(f.strip() for f in args.faults.split(",") if f.strip()),
        toxics=not args.no_toxics,
        bugs=tuple(args.bug),
        shrink_minutes=args.shrink_minutes,
        shard=parse_shard(args.shard),
        database=Path(args.database) if args.database else None,
    )
    # one clear line for a misspelt switch or fault prefix, before anything starts
    worlds.hooks(opts.world).validate(opts)
    return opts


def quiet_asyncio() -> None:
    """grpc.aio's poller logs "Event loop is closed" tracebacks when a short-lived loop (the
    checkers' ``run_sync``) ends under it; pytest captures them, a terminal would drown."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def explore_main(args: argparse.Namespace) -> int:
    quiet_asyncio()

    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    opts = _options(args, seed)
    out = Path(args.out or f"explore-out/{seed}")
    out.mkdir(parents=True, exist_ok=True)
    if args.check_determinism:
        return determinism(opts, out)
    regressions = Path(args.regressions) if args.regressions else None
    if args.shrink:
        return explore(opts, out, regressions=regressions, given=Path(args.shrink))
    return explore(opts, out, regressions=regressions)


def _world(opts: Any) -> Any:
    """The world's servers for this run; entering it yields ``run(schedule, label)``."""
    from harness.explore import worlds
    from harness.explore.engine import derive

    return worlds.hooks(opts.world).runner(derive(opts.seed, "world", *opts.shard))


def explore(
    opts: Any, out: Path, *, regressions: Path | None = None, given: Path | None = None
) -> int:
    """Search (or shrink ``given``), report, save; the exit code says whether it ended as
    expected."""
    from harness.explore import merge as merge_mod
    from harness.explore import regress
    from harness.explore import schedule as S
    from harness.explore.engine import Explorer

    decisions = out / "decisions.jsonl"
    decisions.write_text("")
    i, n = opts.shard
    print(
        f"explore {opts.world}: seed {opts.seed} shard {i}/{n} (hypothesis seed "
        f"{opts.hypothesis_seed}), bugs {', '.join(opts.bugs) or 'none (all fixes on)'}, "
        f"{opts.minutes:g} min, confirm {opts.confirm[0]} of at most {opts.confirm[1]} runs",
        flush=True,
    )
    sched = None
    if given is not None:
        sched = regress.load(given).schedule
        sched = S.Schedule(sched.steps, world=sched.world, bugs=tuple(opts.bugs))
    with _world(opts) as run:
        explorer = Explorer(opts, run, decisions=decisions, log=_say)
        found = explorer.search() if sched is None else explorer.shrink(sched)
    saved_path = None
    if found.minimal is not None:
        saved_path = save_failure(opts, found, out / "failures", regressions)
    for j, ev in enumerate(found.fixed_failures[:3], 1):
        res = ev.runs[0]
        fixed = S.Saved(
            ev.schedule, "DIVERGED", res.symptom, {"seed": opts.seed, "check": res.check}
        )
        path = regress.save(fixed, out / "fixed-failures", f"fixed-{res.check}-{opts.seed}-{j}")
        print(f"explore: also fails with every fix on (set aside): {path} — {res.symptom[:120]}")
    row = verdict_row(opts, found, saved_path)
    merge_mod.write([row], out)
    print(
        f"explore: {found.examples} schedule(s), {found.runs} run(s) ({found.shrink_runs} while "
        f"shrinking), {found.inconclusive} inconclusive, {found.errors} error(s) in "
        f"{found.seconds:.0f}s"
    )
    if found.aborted:
        print(f"explore: stopped: {found.aborted}")
    print(f"explore: {row.outcome}: {row.symptom}")
    print(f"explore: {out / 'verdicts.json'}, {out / 'junit.xml'}, {out / 'decisions.jsonl'}")
    return 0 if row.ok and not found.aborted else 1


def _say(line: str) -> None:
    print(line, flush=True)


def save_failure(opts: Any, found: Any, directory: Path, regressions: Path | None) -> Path:
    """Save the shrunk failure as ``<name>.json`` and, when the engine kept it, the journal
    of its confirmed failing run as ``<name>.journal.jsonl`` beside it (not beside the
    regression copy: the suites replay schedules, and a journal would bloat the repo)."""
    from harness.explore import failure_journal, regress
    from harness.explore import schedule as S

    first, minimal = found.first, found.minimal
    res = minimal.first_failure
    k, most = opts.confirm
    meta = {
        "seed": opts.seed,
        "shard": f"{opts.shard[0]}/{opts.shard[1]}",
        "hypothesis_seed": opts.hypothesis_seed,
        "time_to_find_s": round(found.time_to_find, 1),
        "steps_before": len(first.schedule) if first else len(minimal.schedule),
        "steps_after": len(minimal.schedule),
        "confirm": minimal.confirmation(k, most),
        "check": res.check if res else "",
        "found": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"reconverge explore --world {opts.world}"
        + "".join(f" --bug {b}" for b in opts.bugs)
        + f" --seed {opts.seed}"
        + (f" --faults {','.join(opts.faults)}" if opts.faults else "")
        + ("" if opts.toxics else " --no-toxics")
        + (f" --shard {opts.shard[0]}/{opts.shard[1]}" if opts.shard[1] > 1 else ""),
    }
    saved = S.Saved(
        minimal.schedule,
        "DIVERGED",
        res.symptom if res else "",
        meta,
        original=first.schedule if first else None,
        original_confirm=first.confirmation(k, most) if first else "",
    )
    name = f"{'-'.join(opts.bugs) or 'fixed'}-{res.check if res else 'failure'}-{opts.seed}"
    path = regress.save(saved, directory, name)
    if res is not None and res.journal:
        # the failing run of the shrunk schedule, drawn by ``reconverge report <path>``
        kept = failure_journal.write(failure_journal.path_for(path), res.journal)
        print(f"journal of the failing run: {kept} ({len(res.journal)} records)")
    print(minimal.schedule.table(title=f"shrunk failure ({len(minimal.schedule)} steps):"))
    print(f"symptom: {saved.symptom}")
    print(
        f"found in {meta['time_to_find_s']}s; {meta['steps_before']} -> {meta['steps_after']} steps"
    )
    print(f"saved: {path}\nreplay: reconverge repro {path}")
    if regressions is not None:
        print(f"regression case: {regress.save(saved, regressions, name)}")
    return path


def verdict_row(opts: Any, found: Any, saved: Path | None) -> Any:
    from harness.verdict import Outcome, Verdict

    buggy = bool(opts.bugs)
    res = found.minimal.first_failure if found.minimal else None
    if found.aborted:
        outcome, symptom = Outcome.ERROR, found.aborted
    elif res is not None:
        outcome = Outcome.CAUGHT if buggy else Outcome.DIVERGED
        symptom = f"{res.symptom} ({len(found.minimal.schedule)} steps; {saved})"
    elif found.examples == 0:
        outcome, symptom = Outcome.INCONCLUSIVE, "no schedule ran"
    else:
        outcome = Outcome.MISSED if buggy else Outcome.CONVERGED
        symptom = f"no failure in {found.examples} schedule(s)"
    return Verdict(
        suite=f"explore-{opts.world}",
        case=f"seed {opts.seed} shard {opts.shard[0]}/{opts.shard[1]}",
        variant="buggy" if buggy else "fixed",
        fault=f"explored: {','.join(opts.faults) or 'whole menu'}"
        + ("" if opts.toxics else ", no toxics"),
        outcome=str(outcome),
        symptom=symptom,
        seconds=round(found.seconds, 1),
        findings=[f.summary() for f in res.findings] if res else [],
        reason=",".join(opts.bugs),
    )


def determinism(opts: Any, out: Path) -> int:
    """One seed twice, no example database; diff the decision journals draw by draw."""
    import dataclasses

    from harness.explore.engine import Explorer

    opts = dataclasses.replace(opts, database=None)
    journals = []
    with _world(opts) as run:
        for k in (1, 2):
            path = out / f"decisions-{k}.jsonl"
            path.write_text("")
            print(f"determinism: run {k} of seed {opts.seed}", flush=True)
            found = Explorer(opts, run, decisions=path, log=_say).search()
            journals.append([_comparable(d) for d in found.decisions])
    a, b = journals
    for i, (x, y) in enumerate(zip(a, b, strict=False), 1):
        if x != y:
            print(
                f"determinism: decision {i} differs:\n  run 1: {json.dumps(x, default=str)[:600]}\n"
                f"  run 2: {json.dumps(y, default=str)[:600]}"
            )
            return 1
    if len(a) != len(b):
        print(f"determinism: run 1 made {len(a)} decisions, run 2 {len(b)}")
        return 1
    print(
        f"determinism: identical decision journals ({len(a)} decisions, "
        f"{sum(len(d['draws']) for d in a)} draws)"
    )
    return 0


def _comparable(decision: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two runs of one seed (not timings, not run counts)."""
    return {k: decision[k] for k in ("example", "draws", "schedule", "verdict")}


def merge_main(args: argparse.Namespace) -> int:
    from harness.explore import merge

    rows = merge.merge([Path(d) for d in args.dirs], Path(args.out))
    print(merge.table(rows))
    print(
        f"merge: {len(rows)} row(s) from {len(args.dirs)} dir(s) -> {args.out}/verdicts.json, "
        f"{args.out}/junit.xml, {args.out}/report.html"
    )
    return 0 if all(v.ok for v in rows) else 1
