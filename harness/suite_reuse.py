"""Running a suite's own cases from elsewhere: the mutation meta-tests and the kind suites.

Why: "this case, with one fix removed, is not CONVERGED" and "seed d's cases against a real
kubelet" are only worth something if they call the very case functions the suites hold — a
copy would drift from the suite it claims to check. ``suites/`` is not a package, so its
modules are loaded by path, once per process.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from harness.pytest_plugin import VerdictRecorder

SUITES = Path(__file__).resolve().parents[1] / "suites"


def load_suite(stem: str) -> ModuleType:
    """``suites/<stem>.py`` as a module (the same object for every caller in a process)."""
    name = f"_reconverge_suite_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SUITES / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class Capture(VerdictRecorder):
    """The plugin's recorder, minus the table: the verdict stays here for the assertions."""

    def __init__(self, request: pytest.FixtureRequest, label: str) -> None:
        item = SimpleNamespace(
            config=request.config, user_properties=[], nodeid=f"{request.node.nodeid}::{label}"
        )
        super().__init__(item)  # type: ignore[arg-type]


def run_case(
    fn: Callable[..., Any], fixtures: dict[str, Any], request: pytest.FixtureRequest, **given: Any
) -> Any:
    """Call a suite case with the fixtures it names; return the verdict it recorded.

    The case's own expectation (judge fails or, not strict, skips an unexpected verdict)
    is swallowed: the caller asserts on the verdict itself.
    """
    rec = Capture(request, fn.__name__)
    values = {**fixtures, **given, "verdict": rec, "request": request}
    # a fixture the caller did not hand over (e.g. the matrix's ``containerd_version``,
    # None outside a matrix run) comes from pytest, as it would for the suite itself
    kwargs = {
        name: values[name] if name in values else request.getfixturevalue(name)
        for name in inspect.signature(fn).parameters
    }
    try:
        fn(**kwargs)
    except (AssertionError, pytest.skip.Exception):
        pass
    assert rec.value is not None, f"{fn.__name__} recorded no verdict"
    return rec.value
