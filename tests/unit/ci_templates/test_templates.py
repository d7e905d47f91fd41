"""The CI templates under fixtures/ci/ say what docs/ci.md promises, and the GitLab job is
well-formed by GitLab's documented keywords.

GitLab has no offline linter (its CI Lint is an API of a GitLab instance), so the job is
checked here: a real YAML parse, then a structural check written from the keyword reference
(https://docs.gitlab.com/ci/yaml/). Broken copies prove the check rejects what it should.
actionlint checks the GitHub workflow in tests/integration/ci_templates/.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
GITHUB = REPO / "fixtures" / "ci" / "github" / "reconverge.yml"
GITLAB = REPO / "fixtures" / "ci" / "gitlab" / "reconverge.gitlab-ci.yml"

#: What the cache key must follow: every input of a Go build or of the node image.
RECIPE_GLOBS = ("harness/build/**", "harness/kind/**", "harness/images/**", "pyproject.toml")

# -- GitLab: the keyword reference, as data -----------------------------------------------

GLOBAL_KEYWORDS = frozenset(
    {"default", "include", "stages", "variables", "workflow", "spec"}
    | {"image", "services", "cache", "before_script", "after_script"}  # deprecated globals
)
JOB_KEYWORDS = frozenset(
    {
        "after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
        "dast_configuration", "dependencies", "environment", "extends", "hooks", "id_tokens",
        "identity", "image", "inherit", "interruptible", "manual_confirmation", "needs",
        "pages", "parallel", "release", "resource_group", "retry", "rules", "run", "script",
        "secrets", "services", "stage", "tags", "timeout", "trigger", "variables", "when",
    }
)  # fmt: skip
CACHE_KEYWORDS = frozenset(
    {"key", "paths", "untracked", "unprotect", "when", "policy", "fallback_keys"}
)
ARTIFACTS_KEYWORDS = frozenset(
    {"paths", "exclude", "expire_in", "expose_as", "name", "public", "access", "reports"}
    | {"untracked", "when"}
)
WHEN_SAVE = frozenset({"on_success", "on_failure", "always"})
DEFAULT_STAGES = ("build", "test", "deploy")
#: GitLab limited ``cache:key:files`` to two entries for years; its newest schema allows ten
#: (content-hashed ``files``, with the old behaviour as ``files_commits``, still two). Two
#: keeps the template valid on every release a user may run.
MAX_KEY_FILES = 2
_DURATION = re.compile(
    r"^(never|(\d+\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|wk?|"
    r"months?|mo|years?|yrs?|y)\s*(and\s*)?)+)$"
)


def gitlab_problems(doc: Any) -> list[str]:
    """Everything wrong with a GitLab CI document, one line each ([] when well-formed)."""
    if not isinstance(doc, dict):
        return ["the document is not a mapping"]
    out: list[str] = []
    stages = doc.get("stages", list(DEFAULT_STAGES))
    if not (isinstance(stages, list) and all(isinstance(s, str) for s in stages)):
        out.append("stages: not a list of names")
        stages = []
    jobs = {k: v for k, v in doc.items() if k not in GLOBAL_KEYWORDS and not k.startswith(".")}
    if not jobs:
        out.append("no job")
    for name, job in jobs.items():
        if not isinstance(job, dict):
            out.append(f"{name}: not a mapping (or an unknown global keyword)")
            continue
        out += [f"{name}: unknown keyword {k!r}" for k in sorted(set(job) - JOB_KEYWORDS)]
        if "trigger" not in job and not _commands(job.get("script")):
            out.append(f"{name}: script is missing or empty")
        for key in ("before_script", "after_script"):
            if key in job and not _commands(job[key]):
                out.append(f"{name}: {key} is not a command or list of commands")
        stage = job.get("stage", "test")
        if stage not in [*stages, ".pre", ".post"]:
            out.append(f"{name}: stage {stage!r} is not in stages {stages}")
        if "timeout" in job and not _DURATION.match(str(job["timeout"])):
            out.append(f"{name}: timeout {job['timeout']!r} is not a duration")
        if not isinstance(job.get("variables", {}), dict):
            out.append(f"{name}: variables is not a mapping")
        out += [f"{name}: {p}" for p in _cache_problems(job.get("cache"))]
        out += [f"{name}: {p}" for p in _artifacts_problems(job.get("artifacts"))]
    return out


def _commands(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, list) and bool(value) and all(isinstance(c, str) for c in value)


def _cache_problems(cache: Any) -> list[str]:
    if cache is None:
        return []
    out: list[str] = []
    for item in cache if isinstance(cache, list) else [cache]:
        if not isinstance(item, dict):
            out.append("cache: not a mapping")
            continue
        out += [f"cache: unknown keyword {k!r}" for k in sorted(set(item) - CACHE_KEYWORDS)]
        key = item.get("key")
        if isinstance(key, dict):
            out += [f"cache:key: unknown keyword {k!r}" for k in set(key) - {"files", "prefix"}]
            files = key.get("files")
            if not (isinstance(files, list) and 1 <= len(files) <= MAX_KEY_FILES):
                out.append(f"cache:key:files must list 1 to {MAX_KEY_FILES} files, not {files!r}")
            else:
                missing = [f for f in files if not (REPO / f).is_file()]
                out += [f"cache:key:files: {f} is not a file of the repository" for f in missing]
        elif key is not None and (not isinstance(key, str) or "/" in key or key in (".", "..")):
            out.append(f"cache:key {key!r}: a string without '/' or a mapping with files")
        paths = item.get("paths")
        if not (isinstance(paths, list) and paths):
            out.append("cache:paths is missing (nothing would be cached)")
        else:
            out += [
                f"cache:paths: {p} is outside the project directory (GitLab caches only inside)"
                for p in paths
                if str(p).startswith(("/", "~", "..")) and not str(p).startswith("$CI_PROJECT_DIR")
            ]
        if item.get("when", "on_success") not in WHEN_SAVE:
            out.append(f"cache:when {item['when']!r} is not one of {sorted(WHEN_SAVE)}")
        if item.get("policy", "pull-push") not in ("pull", "push", "pull-push"):
            out.append(f"cache:policy {item['policy']!r} is not pull, push or pull-push")
    return out


def _artifacts_problems(artifacts: Any) -> list[str]:
    if artifacts is None:
        return []
    if not isinstance(artifacts, dict):
        return ["artifacts: not a mapping"]
    out = [f"artifacts: unknown keyword {k!r}" for k in sorted(set(artifacts) - ARTIFACTS_KEYWORDS)]
    if artifacts.get("when", "on_success") not in WHEN_SAVE:
        out.append(f"artifacts:when {artifacts['when']!r} is not one of {sorted(WHEN_SAVE)}")
    if "expire_in" in artifacts and not _DURATION.match(str(artifacts["expire_in"])):
        out.append(f"artifacts:expire_in {artifacts['expire_in']!r} is not a duration")
    reports = artifacts.get("reports", {})
    if not isinstance(reports, dict):
        out.append("artifacts:reports: not a mapping")
    elif "junit" in reports and not (
        isinstance(reports["junit"], str)
        or (
            isinstance(reports["junit"], list) and all(isinstance(p, str) for p in reports["junit"])
        )
    ):
        out.append("artifacts:reports:junit: not a path or list of paths")
    return out


def _junitxml(commands: list[str]) -> str | None:
    """The ``--junitxml`` path of the first command that runs the tests."""
    for command in commands:
        for word in shlex.split(command):
            if word.startswith("--junitxml="):
                return word.split("=", 1)[1]
    return None


# -- the GitLab job -----------------------------------------------------------------------


@pytest.fixture
def gitlab() -> dict[str, Any]:
    return yaml.safe_load(GITLAB.read_text())


def test_the_gitlab_job_is_well_formed(gitlab: dict[str, Any]) -> None:
    assert gitlab_problems(gitlab) == []


def test_the_gitlab_job_publishes_junit_and_keeps_artifacts_always(gitlab: dict[str, Any]) -> None:
    job = gitlab["reconverge"]
    junit = _junitxml(job["script"])
    assert junit, "the test command writes no --junitxml"
    artifacts = job["artifacts"]
    assert artifacts["reports"]["junit"] == junit
    assert artifacts["when"] == "always", "a failing run is the one whose artifacts matter"
    assert "artifacts/" in artifacts["paths"]
    assert _DURATION.match(artifacts["expire_in"])
    assert any(c.startswith("./ci/bootstrap") for c in job["before_script"])


def test_the_gitlab_cache_is_the_build_cache_keyed_on_recipes(gitlab: dict[str, Any]) -> None:
    job = gitlab["reconverge"]
    cache_dir = job["variables"]["RECONVERGE_CACHE"]
    assert cache_dir.startswith("$CI_PROJECT_DIR/"), "GitLab caches only inside the project"
    relative = cache_dir.removeprefix("$CI_PROJECT_DIR/").rstrip("/") + "/"
    assert job["cache"]["paths"] == [relative]
    assert job["cache"]["when"] == "always", "a cold build must be kept even if a test fails"
    files = job["cache"]["key"]["files"]
    assert all(f.startswith("harness/build/") for f in files), files
    assert "/.cache/" in (REPO / ".gitignore").read_text().split(), (
        "the in-project cache must be ignored (ruff check . would lint the node rootfs)"
    )


def test_the_gitlab_timeout_is_ci_s_budget(gitlab: dict[str, Any]) -> None:
    assert gitlab["reconverge"]["timeout"] == "90 minutes"


# (mutation of the parsed job, a fragment of the problem it must produce)
GITLAB_BROKEN = {
    "three-key-files": (
        lambda j: j["cache"]["key"]["files"].append("pyproject.toml"),
        "must list 1 to 2 files",
    ),
    "key-file-not-in-repo": (
        lambda j: j["cache"]["key"]["files"].__setitem__(0, "harness/build/nope.py"),
        "is not a file of the repository",
    ),
    "no-script": (lambda j: j.pop("script"), "script is missing"),
    "unknown-keyword": (lambda j: j.__setitem__("artefacts", {}), "unknown keyword 'artefacts'"),
    "bad-when": (lambda j: j["artifacts"].__setitem__("when", "sometimes"), "artifacts:when"),
    "bad-expire": (lambda j: j["artifacts"].__setitem__("expire_in", "soon"), "expire_in"),
    "cache-outside-project": (
        lambda j: j["cache"].__setitem__("paths", ["~/.cache/reconverge"]),
        "outside the project directory",
    ),
    "unknown-stage": (lambda j: j.__setitem__("stage", "tests"), "not in stages"),
    "bad-timeout": (lambda j: j.__setitem__("timeout", "ninety"), "not a duration"),
}


@pytest.mark.parametrize("name", sorted(GITLAB_BROKEN))
def test_a_broken_gitlab_copy_is_rejected(gitlab: dict[str, Any], name: str) -> None:
    mutate, fragment = GITLAB_BROKEN[name]
    mutate(gitlab["reconverge"])
    problems = gitlab_problems(gitlab)
    assert any(fragment in p for p in problems), problems


def test_the_gitlab_job_matches_gitlabs_published_schema() -> None:
    """GitLab's own JSON schema, as vendored by check-jsonschema, when that is installed.

    An addition to the structural check above, not a replacement: the schema knows every
    keyword's shape but nothing of this repository (which files exist, where JUnit lands).
    """
    checker = pytest.importorskip("check_jsonschema", reason="check-jsonschema not installed")
    from click.testing import CliRunner  # check-jsonschema's own CLI framework

    cli = checker.main
    result = CliRunner().invoke(cli, ["--builtin-schema", "vendor.gitlab-ci", str(GITLAB)])
    assert result.exit_code == 0, result.output


# -- the GitHub workflow --------------------------------------------------------------------


@pytest.fixture
def github() -> dict[str, Any]:
    return yaml.safe_load(GITHUB.read_text())


def _steps(github: dict[str, Any]) -> list[dict[str, Any]]:
    return github["jobs"]["reconverge"]["steps"]


def _uses(github: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(github) if str(s.get("uses", "")).split("@")[0] == action]


def test_the_github_cache_is_keyed_on_every_recipe(github: dict[str, Any]) -> None:
    (restore,) = _uses(github, "actions/cache/restore")
    (save,) = _uses(github, "actions/cache/save")
    assert restore["with"]["path"] == save["with"]["path"] == "~/.cache/reconverge"
    key = restore["with"]["key"]
    globs = re.search(r"hashFiles\(([^)]*)\)", key)
    assert globs, key
    assert tuple(g.strip(" '") for g in globs.group(1).split(",")) == RECIPE_GLOBS
    for g in RECIPE_GLOBS:
        assert list(REPO.glob(g)), f"{g} matches no file: the key would ignore it"
    steps = _steps(github)
    assert steps.index(save) > next(
        i for i, s in enumerate(steps) if s.get("run") == "./ci/bootstrap"
    ), "save after the bootstrap that fills the cache"


def test_the_github_job_uploads_artifacts_and_junit_always(github: dict[str, Any]) -> None:
    job = github["jobs"]["reconverge"]
    assert job["timeout-minutes"] == 90
    runs = [s["run"] for s in _steps(github) if "run" in s]
    junit = _junitxml([r for r in runs if r.startswith(("./ci/test", ".ci/run"))])
    assert junit == "artifacts/junit.xml"
    (upload,) = _uses(github, "actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"] == "artifacts/"
    (report,) = _uses(github, "mikepenz/action-junit-report")
    assert report["if"] == "always()" and report["with"]["report_paths"] == junit
    assert github["permissions"]["checks"] == "write", "the reporter writes a check run"


def test_both_templates_run_as_root_with_cgroups() -> None:
    for path in (GITHUB, GITLAB):
        text = path.read_text()
        assert "ROOT" in text and "CGROUPS" in text, f"{path.name} must say what the machine needs"
        assert '"$(id -u)"' in text, f"{path.name} must stop early when not root"
