"""The "use reconverge in your own repository" path, as a user takes it (docs/plugin.md).

Build the wheel and install it into a fresh virtualenv outside the repository — the core
only, no extras — then, in a project directory that is not the repository, run the plumbing
suite with that virtualenv's pytest; add the ``kube`` extra and run ``reconverge doctor``.
Why this exists: a checkout and the editable install both see the source tree, so a module
that finds its data files relative to the repository, or an import of an undeclared package,
passes every other test and breaks only for the people who install the package.

Slow by nature (a venv, pip, a pytest run), so one wheel and one venv per session, pip's own
cache, and no build isolation: the repository's venv already has the build backend."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[3]
#: What a wheel is built from (the rest of the repository is not part of the package).
SOURCES = ("pyproject.toml", "README.md", "harness", "failpoints", "fixtures")
#: The plumbing suite as a user would copy it into their own tests directory.
SUITE_FILES = ("test_plumbing_toxiproxy.py", "conftest.py")
#: Only the `kube` / `docker` extras may bring these.
EXTRAS_ONLY = ("kubernetes", "docker", "testcontainers", "yaml", "cryptography")
PIP_TIMEOUT = 600


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300):
    """Run ``cmd``; on failure the assertion carries its output, not just the exit code."""
    out = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, (
        f"{' '.join(cmd)} exited {out.returncode}\n"
        f"--- stdout\n{out.stdout[-6000:]}\n--- stderr\n{out.stderr[-4000:]}"
    )
    return out


#: reconverge settings a user's shell may share with this session: where binaries are.
KEEP_SETTINGS = ("RECONVERGE_CACHE", "RECONVERGE_RUN_ROOT")


def _user_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell with the new venv activated.

    Nothing of this session may leak in: no PYTHONPATH to the checkout, no pytest or xdist
    settings, no run directory of the outer run (the inner pytest is a run of its own), and
    no reconverge setting that changes behaviour (CI's ``RECONVERGE_ARTIFACTS`` would have
    the inner run overwrite the outer ``verdicts.json``; ``RECONVERGE_BACKEND=container``
    would need the ``docker`` extra) — only where the binaries are.
    """

    def keep(name: str) -> bool:
        if name.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV")):
            return False
        if name.startswith("RECONVERGE_"):
            return name in KEEP_SETTINGS or name.endswith("_BIN")
        return True

    env = {k: v for k, v in os.environ.items() if keep(k)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """One directory outside the repository for the build, the venv and the project.

    Removed at the end (a venv is ~100 MB; pytest would keep three sessions' worth).
    """
    root = Path(tempfile.mkdtemp(prefix="rcv-wheel-", dir="/tmp"))
    assert REPO not in root.parents
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def wheel(scratch: Path) -> Path:
    """``dist/reconverge-*.whl`` built from a copy of the package sources.

    A copy, because an in-tree build writes ``build/`` and ``*.egg-info`` into the shared
    checkout, where the editable install keeps its own metadata.
    """
    src = scratch / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=skip)
        else:
            shutil.copy2(path, src / name)
    dist = scratch / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    _run(
        [*pip_wheel, "-w", str(dist), str(src)],
        cwd=scratch,
        env={**os.environ},
        timeout=PIP_TIMEOUT,
    )
    (built,) = dist.glob("reconverge-*.whl")
    return built


def _pip_install(venv: Path, requirement: str, cwd: Path) -> None:
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
        cwd=cwd,
        env=_user_env(venv),
        timeout=PIP_TIMEOUT,
    )


@dataclass
class CoreInstall:
    """The venv after ``pip install dist/*.whl`` (no extras), and what a probe saw there."""

    venv: Path
    plugin_file: Path
    fixtures_root: Path
    extras_found: list[str]


#: Run right after the core install, before any extra is added to the same venv.
PROBE = (
    "import importlib.util, json, failpoints, harness.pytest_plugin\n"
    "from harness import fixtures_dir\n"
    f"extras = [m for m in {EXTRAS_ONLY!r} if importlib.util.find_spec(m)]\n"
    "print(json.dumps([harness.pytest_plugin.__file__, str(fixtures_dir.root()), extras]))"
)


@pytest.fixture(scope="module")
def core(scratch: Path, wheel: Path) -> CoreInstall:
    """A fresh venv with ``pip install dist/*.whl`` — the core, no extras — probed at once."""
    root = scratch / "venv"
    _run([sys.executable, "-m", "venv", str(root)], cwd=scratch, env=_user_env(root))
    _pip_install(root, str(wheel), scratch)
    out = _run([str(root / "bin" / "python"), "-c", PROBE], cwd=scratch, env=_user_env(root))
    plugin, fixtures, extras = json.loads(out.stdout)
    return CoreInstall(root, Path(plugin), Path(fixtures), extras)


@pytest.fixture(scope="module")
def core_plumbing(core: CoreInstall, project: Path) -> subprocess.CompletedProcess[str]:
    """The plumbing suite run by the core venv's pytest in the user's project.

    A fixture, not the test body, so it always runs before ``venv`` adds an extra to the
    same venv, whatever order the tests are selected in.
    """
    return subprocess.run(
        [str(core.venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", "--reconverge-strict"],
        cwd=project,
        env=_user_env(core.venv),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def venv(core: CoreInstall, core_plumbing: object, wheel: Path, scratch: Path) -> Path:
    """The same venv with the ``kube`` extra added: ``reconverge doctor`` counts the embedded
    Kubernetes backend as required (the claim-operator suites run on it by default), and
    without the extra says so and exits 2."""
    _pip_install(core.venv, f"reconverge[kube] @ {wheel.as_uri()}", scratch)
    return core.venv


#: The marker in docs/plugin.md before the minimal suite this test runs.
DOCS_MARKER = "<!-- tested: tests/integration/packaging/test_wheel.py"


def docs_example() -> str:
    """The minimal suite of docs/plugin.md, so the page cannot drift from what works."""
    text = (REPO / "docs" / "plugin.md").read_text()
    after = text.split(DOCS_MARKER, 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0] + "\n"


@pytest.fixture(scope="module")
def project(scratch: Path) -> Path:
    """A user's repository: the plumbing suite copied into ``tests/`` and the docs' example,
    nothing else of ours."""
    root = scratch / "project"
    (root / "tests").mkdir(parents=True)
    for name in SUITE_FILES:
        shutil.copy2(REPO / "suites" / name, root / "tests" / name)
    (root / "tests" / "test_docs_example.py").write_text(docs_example())
    (root / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    return root


def test_wheel_carries_the_fixtures_the_plugin_and_the_commands(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(
            z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    for rel in ("containerd/config-v2.toml", "crds", "kube/kwok-stages.yaml", "kind/entrypoint.sh"):
        assert any(n.startswith(f"harness/_fixtures/{rel}") for n in names), rel
    assert "harness/py.typed" in names
    assert "failpoints/py.typed" in names
    assert "reconverge = harness.pytest_plugin" in entry_points
    assert "reconverge = harness.cli:main" in entry_points
    assert "Classifier: Framework :: Pytest" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert "Provides-Extra: kube" in metadata


def test_core_install_imports_without_kube_or_docker(core):
    # the installed copies, not the checkout's
    assert core.plugin_file.is_relative_to(core.venv), core.plugin_file
    assert core.fixtures_root.is_relative_to(core.venv), core.fixtures_root
    assert not core.fixtures_root.is_symlink()
    assert (core.fixtures_root / "containerd" / "config-v2.toml").is_file()
    assert core.extras_found == [], (
        f"the core install pulled in extras-only packages: {core.extras_found}"
    )


def test_plumbing_suite_and_docs_example_pass_with_the_installed_plugin_and_no_extras(
    core_plumbing, project
):
    out = core_plumbing
    assert out.returncode == 0, f"{out.stdout[-6000:]}\n--- stderr\n{out.stderr[-3000:]}"
    plumbing = (project / "tests" / SUITE_FILES[0]).read_text().count("\ndef test_")
    example = 2  # the docs example's buggy and fixed variants
    summary = out.stdout.strip().splitlines()[-1]
    # every case ran and passed (strict: a skip would have failed the run) ...
    assert re.fullmatch(rf"{plumbing + example} passed in [0-9.]+s", summary), out.stdout[-3000:]
    # ... and the verdicts came from the installed plugin's rules and table
    table = [line.split() for line in out.stdout.splitlines()]
    assert sum(1 for row in table if row[:1] == ["plumbing"] and "PASSED" in row) == plumbing
    example_rows = {row[2]: row[5] for row in table if row[:2] == ["example", "dropped_reply"]}
    assert example_rows == {"buggy": "CAUGHT", "fixed": "CONVERGED"}, out.stdout[-3000:]
    assert str(REPO) not in out.stdout, "the inner run reached into the checkout"


def test_doctor_exits_0(venv, project):
    out = _run([str(venv / "bin" / "reconverge"), "doctor"], cwd=project, env=_user_env(venv))
    assert "toxiproxy" in out.stdout
