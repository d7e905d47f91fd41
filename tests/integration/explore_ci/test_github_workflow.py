"""The sharded-explore GitHub workflow passes actionlint, a broken copy does not, and the
commands it runs are ones ``reconverge`` accepts.

actionlint (``tests/integration/actionlint_tool.py``, shared with the main workflow's test)
judges expressions, job keys, ``needs:`` and ``matrix`` references and each action's inputs.
It cannot know reconverge's options, so the explore line of the shard job is expanded for
every matrix value and parsed by the real ``reconverge`` argument parser, and the shard
count in ``--shard i/N`` must be the matrix's length — the one thing a reader changing N
could forget.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import build_parser
from tests.integration.actionlint_tool import lint

REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / "fixtures" / "explore" / "github-explore-shards.yml"


def test_the_workflow_passes_actionlint(actionlint: Path) -> None:
    done = lint(actionlint, WORKFLOW)
    assert done.returncode == 0, f"actionlint found problems:\n{done.stdout}{done.stderr}"


# (what the copy changes, into what, a fragment actionlint's message must contain)
BROKEN = {
    "merge-needs-a-job-that-does-not-exist": (
        "needs: explore",
        "needs: explorer",
        'job "merge" needs job "explorer" which does not exist',
    ),
    "unknown-matrix-key": (
        '--shard "${{ matrix.shard }}/4"',
        '--shard "${{ matrix.shards }}/4"',
        'property "shards" is not defined',
    ),
    "unknown-download-input": (
        "pattern: explore-shard-*",
        "patern: explore-shard-*",
        'input "patern" is not defined',
    ),
    "unknown-step-id": (
        "steps.merge.outcome",
        "steps.merged.outcome",
        'property "merged" is not defined',
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_copy_fails_actionlint(actionlint: Path, tmp_path: Path, name: str) -> None:
    old, new, message = BROKEN[name]
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, f"the workflow no longer contains {old!r}: update this case"
    broken = tmp_path / "explore.yml"
    broken.write_text(text.replace(old, new))
    done = lint(actionlint, broken)
    assert done.returncode == 1, f"actionlint accepted a broken copy ({name}):\n{done.stdout}"
    assert message in done.stdout, done.stdout


def _step(job: dict[str, Any], starts: str) -> dict[str, Any]:
    [step] = [s for s in job["steps"] if str(s.get("name", "")).startswith(starts)]
    return step


def _reconverge_line(script: str) -> str:
    """The ``.venv/bin/reconverge …`` command of a ``run:`` script, continuations joined."""
    joined = script.replace("\\\n", " ")
    [line] = [x for x in joined.splitlines() if x.strip().startswith(".venv/bin/reconverge")]
    return line.split("|")[0]


def test_shards_and_merge_agree() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    explore, merge = flow["jobs"]["explore"], flow["jobs"]["merge"]
    shards = explore["strategy"]["matrix"]["shard"]
    n = len(shards)
    assert shards == list(range(n)) and n == 4, shards
    assert explore["strategy"]["fail-fast"] is False  # one shard's finding never stops the rest
    assert merge["needs"] == "explore" and "cancelled()" in merge["if"]
    line = _reconverge_line(_step(explore, "Explore shard")["run"])
    outs = set()
    for shard in shards:
        expanded = line.replace("${{ matrix.shard }}", str(shard))
        expanded = expanded.replace('"${bug_args[@]}"', "--bug cri.podsandbox_dual_exit_handlers")
        expanded = re.sub(r'"\$(SEED|MINUTES)"', "1", expanded)
        args = build_parser().parse_args(shlex.split(expanded)[1:])
        assert args.shard == f"{shard}/{n}", args.shard
        assert args.world == "sandbox"
        outs.add(args.out)
    [out] = outs  # every shard writes the same relative path inside its own artifact
    upload = _step(explore, "Upload the shard")
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == Path(out).parts[0]
    assert upload["with"]["name"] == "explore-shard-${{ matrix.shard }}"
    download = _step(merge, "Download every shard")
    assert download["with"]["pattern"] == "explore-shard-*"
    merge_line = _reconverge_line(_step(merge, "Merge")["run"])
    margs = build_parser().parse_args(shlex.split(merge_line)[1:])
    inside = Path(out).relative_to(Path(out).parts[0])
    assert margs.dirs == [f"{download['with']['path']}/explore-shard-*/{inside}"], margs.dirs
    junit = _step(merge, "Publish JUnit")
    assert junit["with"]["report_paths"] == f"{margs.out}/junit.xml"
