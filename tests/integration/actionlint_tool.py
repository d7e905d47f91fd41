"""actionlint from the build cache, for the tests that validate GitHub workflow templates.

Shared by ``ci_templates/`` (the main workflow) and ``explore_ci/`` (the sharded explore
workflow) so both find the binary, skip or fail the same way and run it with the same flags.
actionlint is built from the Go module proxy into the build cache (``harness/build``, in the
default set); it checks what a YAML parse cannot: expression syntax, the inputs each popular
action accepts, ``steps.<id>.outputs`` references, job keys.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.build import cache
from harness.build.components import DEFAULTS
from harness.pytest_plugin import skip_unless_strict

VERSION = DEFAULTS["actionlint"]


def find_actionlint(config: pytest.Config) -> Path:
    """The cached actionlint binary; missing is a skip locally, a failure under strict."""
    found = cache.locate("actionlint", VERSION)
    if found is None:
        skip_unless_strict(
            config,
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
