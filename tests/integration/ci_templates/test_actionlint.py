"""The GitHub workflow template passes actionlint, and actionlint rejects broken copies.

actionlint (found and run by ``tests/integration/actionlint_tool.py``) checks what a YAML
parse cannot: expression syntax, the inputs each popular action accepts,
``steps.<id>.outputs`` references, job keys. The broken copies prove it is really checking
this file — a validator that accepts everything would pass the first test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.actionlint_tool import lint

REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / "fixtures" / "ci" / "github" / "reconverge.yml"


def test_the_workflow_template_passes_actionlint(actionlint: Path) -> None:
    done = lint(actionlint, WORKFLOW)
    assert done.returncode == 0, f"actionlint found problems:\n{done.stdout}{done.stderr}"


# (what the copy changes, into what, a fragment actionlint's message must contain)
BROKEN = {
    "timeout-not-a-number": ("timeout-minutes: 90", "timeout-minutes: ninety", "float number"),
    "unknown-action-input": (
        "if-no-files-found: warn",
        "if-no-file-found: warn",
        'input "if-no-file-found" is not defined',
    ),
    "unknown-step-id": (
        "steps.cache.outputs.cache-primary-key",
        "steps.cach.outputs.cache-primary-key",
        'property "cach" is not defined',
    ),
    "misspelt-job-key": ("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", '"runs-on" section'),
    "unknown-function": ("hashFiles(", "hashFile(", 'undefined function "hashFile"'),
    "action-without-ref": (
        "uses: actions/cache/save@v4",
        "uses: actions/cache/save",
        "ref is missing",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_copy_fails_actionlint(actionlint: Path, tmp_path: Path, name: str) -> None:
    old, new, message = BROKEN[name]
    text = WORKFLOW.read_text()
    assert text.count(old) >= 1, f"the template no longer contains {old!r}: update this case"
    broken = tmp_path / "reconverge.yml"
    broken.write_text(text.replace(old, new, 1))
    done = lint(actionlint, broken)
    assert done.returncode == 1, f"actionlint accepted a broken copy ({name}):\n{done.stdout}"
    assert message in done.stdout, done.stdout
