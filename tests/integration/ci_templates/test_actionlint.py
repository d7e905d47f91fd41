"""The GitHub workflow template passes actionlint, and actionlint rejects broken copies.

actionlint (built from the Go module proxy into the build cache: ``harness/build``, in the
default set) checks what a YAML parse cannot: expression syntax, the inputs each popular
action accepts, ``steps.<id>.outputs`` references, job keys. The broken copies prove it is
really checking this file — a validator that accepts everything would pass the first test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.build import cache
from harness.build.components import DEFAULTS
from harness.pytest_plugin import skip_unless_strict

REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / "fixtures" / "ci" / "github" / "reconverge.yml"
VERSION = DEFAULTS["actionlint"]


@pytest.fixture(scope="module")
def actionlint(request: pytest.FixtureRequest) -> Path:
    """The cached actionlint binary; missing is a skip locally, a failure under strict."""
    found = cache.locate("actionlint", VERSION)
    if found is None:
        skip_unless_strict(
            request.config,
            f"actionlint {VERSION} is not built yet "
            f"(fix: ./ci/bootstrap, or reconverge build ensure actionlint)",
        )
    return found


def lint(binary: Path, path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on one file, from a directory without any actionlint config.

    shellcheck checks the ``run:`` scripts when it is installed (it is optional: without it
    actionlint skips only that part); pyflakes is not used (no Python in ``run:``).
    """
    shellcheck = shutil.which("shellcheck") or ""
    cmd = [
        str(binary),
        "-oneline",
        "-no-color",
        f"-shellcheck={shellcheck}",
        "-pyflakes=",
        str(path),
    ]
    return subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True, timeout=120)


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
