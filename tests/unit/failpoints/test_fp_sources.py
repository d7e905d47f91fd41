"""Specs from the environment, from container annotations, and ``python -m failpoints check``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import failpoints
from failpoints import FailpointSyntaxError
from failpoints.sources import ANNOTATION_PREFIX, from_annotations, load_env

REPO = Path(__file__).resolve().parents[3]


def test_load_env_enables_every_entry(registry):
    env = {"RECONVERGE_FAILPOINTS": "a=1*error(x);b=50%sleep(5)"}
    enabled = load_env(env, registry=registry)
    assert {n: str(t) for n, t in enabled.items()} == {"a": "1*error(x)", "b": "50%delay(5)"}
    assert registry.point("a").evaluate().kind == "error"
    assert registry.status("b").spec == "50%delay(5)"


def test_load_env_unset_or_blank_enables_nothing(registry):
    assert load_env({}, registry=registry) == {}
    assert load_env({"RECONVERGE_FAILPOINTS": "  "}, registry=registry) == {}
    assert registry.list_points() == {}


def test_load_env_other_variable(registry):
    load_env({"MY_FPS": "x=drop"}, var="MY_FPS", registry=registry)
    assert registry.status("x").spec == "drop"


def test_bad_env_names_variable_failpoint_and_column_and_enables_nothing(registry):
    env = {"RECONVERGE_FAILPOINTS": "a=1*off;x=50%3*bogus("}
    with pytest.raises(FailpointSyntaxError) as info:
        load_env(env, registry=registry)
    err = info.value
    assert (err.name, err.column, err.source) == ("x", 6, "RECONVERGE_FAILPOINTS")
    assert str(err) == (
        "RECONVERGE_FAILPOINTS: bad failpoint term x='50%3*bogus(' at column 6: "
        "unknown action 'bogus'"
    )
    assert registry.list_points() == {}  # 'a' was valid but nothing is enabled


def test_load_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("RECONVERGE_FAILPOINTS", "fp.env.default=1*close")
    failpoints.load_env()
    assert failpoints.status("fp.env.default").spec == "1*close"


def test_annotations_map_suffixes_to_terms():
    annotations = {
        ANNOTATION_PREFIX + "Shutdown": "1*error(please retry)",
        ANNOTATION_PREFIX + "Delete": " 1*error(retry) ",
        "io.kubernetes.cri.sandbox-id": "abc",
    }
    got = from_annotations(annotations)
    assert {k: str(v) for k, v in got.items()} == {
        "Shutdown": "1*error(please retry)",
        "Delete": "1*error(retry)",
    }


def test_annotations_with_another_prefix():
    got = from_annotations({"reconverge.failpoint.Pause": "hang"}, "reconverge.failpoint.")
    assert str(got["Pause"]) == "hang"


def test_bad_annotation_names_the_key():
    key = ANNOTATION_PREFIX + "Kill"
    with pytest.raises(FailpointSyntaxError) as info:
        from_annotations({key: "1*bogus"})
    assert info.value.name == "Kill" and info.value.column == 3
    assert str(info.value).startswith(f"annotation {key}: bad failpoint term Kill='1*bogus'")
    with pytest.raises(FailpointSyntaxError, match="bad failpoint name"):
        from_annotations({ANNOTATION_PREFIX + "a b": "off"})


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "RECONVERGE_FAILPOINTS"}
    return subprocess.run(
        [sys.executable, "-m", "failpoints", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**environ, **(env or {})},
    )


def test_cli_check_prints_the_canonical_form():
    out = _check("a=50.0%03*sleep(10) ; b=1*off->1*error(x)")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "a=50%3*delay(10);b=1*off->1*error(x)\n"
    assert out.stderr == ""


def test_cli_check_bad_term_is_one_line_and_exit_2():
    out = _check("x=50%3*bogus(")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        "failpoints: bad failpoint term x='50%3*bogus(' at column 6: unknown action 'bogus'\n"
    )


def test_cli_check_reads_the_environment_without_an_argument():
    out = _check(env={"RECONVERGE_FAILPOINTS": "a=drop;b=bad"})
    assert out.returncode == 2
    assert out.stderr.startswith("failpoints: RECONVERGE_FAILPOINTS: bad failpoint term b=")
    assert out.stderr.count("\n") == 1
    assert _check(env={"RECONVERGE_FAILPOINTS": "a=drop"}).stdout == "a=drop\n"


def test_cli_without_command_is_a_usage_error():
    out = subprocess.run(
        [sys.executable, "-m", "failpoints"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 2 and "usage" in out.stderr
