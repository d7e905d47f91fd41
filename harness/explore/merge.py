"""Shard outputs → one ``verdicts.json``, one JUnit and one ``report.html`` (``reconverge merge``).

Each ``reconverge explore --shard i/N --out DIR`` writes ``DIR/verdicts.json`` (a list of
``harness.verdict.Verdict`` rows, the same schema the suites write) and ``DIR/junit.xml``;
shards share nothing else (an example-database directory at most, merged by union because
Hypothesis keys it by content). Merging is concatenation in the order given, with a JUnit
rebuilt from the rows, so one CI artifact says which shard found what. The report is the
single-file page of :mod:`harness.report` (no journal: the merged rows with the shard each
came from, counts, and every saved failing schedule shrunk next to original).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.errors import ReconvergeError
from harness.verdict import Verdict


def read(directory: Path) -> list[Verdict]:
    """The rows of one shard's ``verdicts.json`` (a missing or bad file is one clear error)."""
    f = directory / "verdicts.json"
    try:
        data = json.loads(f.read_text())
    except OSError:
        raise ReconvergeError(
            f"no verdicts.json in {directory}", fix="pass explore --out directories"
        ) from None
    except json.JSONDecodeError as exc:
        raise ReconvergeError(f"{f}: not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ReconvergeError(f"{f}: expected a list of verdict rows")
    return [Verdict.from_dict(row) for row in data]


def junit(rows: Sequence[Verdict], *, name: str = "reconverge") -> str:
    """One ``<testsuite>``; a row whose verdict does not let its case pass is a failure."""
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(rows)),
        failures=str(sum(not v.ok for v in rows)),
        time=f"{sum(v.seconds for v in rows):.1f}",
    )
    for v in rows:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=v.suite,
            name=f"{v.case} [{v.variant}]",
            time=f"{v.seconds:.1f}",
        )
        if not v.ok:
            fail = ET.SubElement(case, "failure", message=f"{v.outcome}: {v.symptom}"[:500])
            fail.text = json.dumps(v.to_dict(), indent=1)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{v.outcome}: {v.symptom}"
    return ET.tostring(suite, encoding="unicode")


def write(rows: Sequence[Verdict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdicts.json").write_text(json.dumps([v.to_dict() for v in rows], indent=1))
    (out / "junit.xml").write_text(junit(rows) + "\n")


def report(shards: Sequence[tuple[Path, Sequence[Verdict]]], out: Path) -> Path:
    """Write ``out/report.html`` for the merged shards (and its empty ``trace.json``)."""
    from harness.report import bundle, schedule_view

    view = schedule_view.from_shards([(d, [v.to_dict() for v in rows]) for d, rows in shards])
    merged = [v.to_dict() for _, rows in shards for v in rows]
    return bundle.write_report(
        out,
        [],
        title=f"reconverge merge: {len(shards)} shard(s)",
        meta={},
        verdicts=merged,
        explore=view,
    )


def merge(dirs: Iterable[Path], out: Path) -> list[Verdict]:
    shards = [(d, read(d)) for d in dirs]
    rows = [v for _, part in shards for v in part]
    write(rows, out)
    report(shards, out)
    return rows


def table(rows: Sequence[Verdict]) -> str:
    lines = [f"{'case':40}  {'variant':8}  {'verdict':12}  symptom"]
    for v in rows:
        lines.append(f"{v.case[:40]:40}  {v.variant:8}  {v.outcome:12}  {v.symptom[:80]}")
    return "\n".join(lines)
