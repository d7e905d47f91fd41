"""Machine-readable outputs of a session: verdicts.json (against its schema), JUnit, header.

Each test runs a real pytest session in pytester with the plugin loaded from its entry
point, then reads back what it wrote. The schema is checked with a small validator of the
JSON Schema subset ``harness/verdict.schema.json`` uses (no extra dependency): type,
required, properties, additionalProperties, items, enum, const, minimum, minLength, $ref.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.verdict import FILE_NAME, SCHEMA_FILE, SCHEMA_VERSION, Verdict

SUITE = """
import pytest

pytestmark = pytest.mark.suite

@pytest.fixture
def broken():
    raise RuntimeError("containerd went away")

def test_records(verdict):
    verdict.record(suite="demo", case="ok", variant="fixed", fault="drop",
                   outcome="CONVERGED", symptom="view = truth", fired={"drop": 2})

def test_skips(verdict):
    pytest.skip("backend lacks compaction")

def test_errors(verdict, broken):
    pass

def test_diverges(verdict, reconverge_run):
    verdict.record(suite="demo", case="bad", variant="fixed", fault="drop",
                   outcome="DIVERGED", symptom="view != truth", fired={"drop": 1})
    raise AssertionError("view != truth")
"""

BROKEN_MODULE = """
import pytest
pytestmark = pytest.mark.suite
import no_such_module_reconverge
"""

TWO_CASES = """
import pytest
pytestmark = pytest.mark.suite

def test_first(verdict):
    raise AssertionError("stop here")

def test_never_reached(verdict):
    pass
"""

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    """Errors of ``value`` against ``schema`` (the subset named in the module docstring)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), f"unsupported $ref {ref}"
        return validate(value, root["$defs"][ref.rsplit("/", 1)[1]], root, at)
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{at}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} not one of {schema['enum']}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, k) for k in kinds):
            return [*errors, f"{at}: {value!r} is not {kinds}"]
    if isinstance(value, int | float) and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{at}: {value} < {schema['minimum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        errors.append(f"{at}: shorter than {schema['minLength']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += validate(v, props[k], root, f"{at}.{k}")
            elif extra is False:
                errors.append(f"{at}: unexpected property {k}")
            elif isinstance(extra, dict):
                errors += validate(v, extra, root, f"{at}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += validate(v, schema["items"], root, f"{at}[{i}]")
    return errors


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture
def isolated(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("RECONVERGE_ARTIFACTS", raising=False)
    return pytester


def test_validator_rejects_what_the_schema_forbids() -> None:
    """The validator itself can fail: a wrong document is reported, field by field."""
    schema = _schema()
    bad = {"schema": 1, "seed": "x", "versions": {}, "settings": {}, "verdicts": [{"suite": 1}]}
    errors = validate(bad, schema, schema)
    assert any("$.schema" in e for e in errors)
    assert any("$.seed" in e for e in errors)
    assert any("$.verdicts[0]: missing outcome" in e for e in errors)
    assert any("$.verdicts[0].suite" in e for e in errors)


def test_schema_describes_exactly_the_verdict_model() -> None:
    """One owner: the schema's row fields are the dataclass's, its version the module's."""
    schema = _schema()
    row = schema["$defs"]["verdict"]
    fields = set(Verdict.__dataclass_fields__)
    assert set(row["properties"]) == fields
    assert set(row["required"]) == fields
    assert schema["properties"]["schema"]["const"] == SCHEMA_VERSION
    assert row["properties"]["schema"]["const"] == SCHEMA_VERSION


def test_verdicts_json_has_a_valid_row_per_case_and_junit_splits_properties(
    isolated: pytest.Pytester, tmp_path: Path
) -> None:
    isolated.makepyfile(test_demo=SUITE, test_broken=BROKEN_MODULE)
    art = tmp_path / "art"
    junit = tmp_path / "junit.xml"
    result = isolated.runpytest(
        "-p",
        "no:cacheprovider",
        "--reconverge-seed=7",
        "--continue-on-collection-errors",
        f"--reconverge-artifacts={art}",
        f"--junitxml={junit}",
    )
    result.stdout.fnmatch_lines(
        ["reconverge: seed 7, strict off, toxiproxy backend *, kube backend *"]
    )
    result.stdout.fnmatch_lines(["reconverge versions: reconverge *, python *, toxiproxy *"])
    doc = json.loads((art / FILE_NAME).read_text())
    schema = _schema()
    assert validate(doc, schema, schema) == []
    assert doc["schema"] == SCHEMA_VERSION and doc["seed"] == 7
    rows = {r["nodeid"]: r for r in doc["verdicts"]}
    assert set(rows) == {
        "test_demo.py::test_records",
        "test_demo.py::test_skips",
        "test_demo.py::test_errors",
        "test_demo.py::test_diverges",
        "test_broken.py",
    }
    ok = rows["test_demo.py::test_records"]
    assert (ok["outcome"], ok["status"], ok["fired"]) == ("CONVERGED", "passed", {"drop": 2})
    assert ok["seed"] == 7 and isinstance(ok["case_seed"], int)
    assert ok["repro"].endswith("repro test_demo.py::test_records@7")
    assert "toxiproxy" in ok["versions"] and ok["bundle"] == ""
    assert (
        rows["test_demo.py::test_skips"]["outcome"],
        rows["test_demo.py::test_skips"]["status"],
    ) == ("SKIPPED", "skipped")
    err = rows["test_demo.py::test_errors"]
    assert (err["outcome"], err["status"]) == ("ERROR", "error")
    assert "containerd went away" in err["reason"]
    broken = rows["test_broken.py"]
    assert (broken["case"], broken["outcome"]) == ("(collection)", "ERROR")
    assert "no_such_module_reconverge" in broken["reason"]
    bad = rows["test_demo.py::test_diverges"]
    assert (bad["outcome"], bad["status"]) == ("DIVERGED", "failed")
    bundle = Path(bad["bundle"])
    assert bundle.is_dir() and (bundle / "repro.txt").is_file()
    assert json.loads((bundle / "meta.json").read_text())["verdict"]["outcome"] == "DIVERGED"

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {
        name: {p.get("name"): p.get("value") for p in case.iter("property")}
        for name, case in cases.items()
    }
    assert "reconverge_verdict" not in props["test_diverges"], "the JSON blob stays out of JUnit"
    assert props["test_diverges"]["verdict"] == "DIVERGED"
    assert props["test_diverges"]["symptom"] == "view != truth"
    assert props["test_diverges"]["seed"] == "7"
    assert props["test_diverges"]["repro"] == bad["repro"]
    assert props["test_diverges"]["bundle"] == bad["bundle"]
    assert props["test_records"]["verdict"] == "CONVERGED" and "bundle" not in props["test_records"]
    out = "".join(s.text or "" for s in cases["test_diverges"].iter("system-out"))
    assert f"[[ATTACHMENT|{bundle.absolute() / 'repro.txt'}]]" in out
    assert f"[[ATTACHMENT|{bundle.absolute() / 'report.html'}]]" in out


def test_verdicts_json_without_artifacts_and_a_row_for_a_case_never_run(
    isolated: pytest.Pytester,
) -> None:
    isolated.makepyfile(test_two=TWO_CASES)
    result = isolated.runpytest("-p", "no:cacheprovider", "-x", "--reconverge-seed=3")
    result.assert_outcomes(failed=1)
    path = isolated.path / ".reconverge" / FILE_NAME
    result.stdout.fnmatch_lines([f"verdicts: {path}"])
    assert (isolated.path / ".reconverge" / ".gitignore").read_text().endswith("*\n")
    doc = json.loads(path.read_text())
    schema = _schema()
    assert validate(doc, schema, schema) == []
    rows = {r["nodeid"]: r for r in doc["verdicts"]}
    never = rows["test_two.py::test_never_reached"]
    assert (never["outcome"], never["status"]) == ("SKIPPED", "not run")
    assert never["repro"].endswith("repro test_two.py::test_never_reached@3")
    first = rows["test_two.py::test_first"]
    assert (first["outcome"], first["status"]) == ("ERROR", "failed")


def test_a_session_without_suite_cases_writes_nothing(isolated: pytest.Pytester) -> None:
    isolated.makepyfile(test_plain="def test_plain():\n    pass\n")
    isolated.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (isolated.path / ".reconverge").exists()
