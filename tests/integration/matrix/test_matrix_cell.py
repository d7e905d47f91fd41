"""One matrix cell end to end: seed b CRI on v2.1.5 through ``--reconverge-containerd``.

A child pytest runs the real case on a real containerd v2.1.5; the cell in ``matrix.json``
and the row in ``verdicts.json`` must both name the release and the declared behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import binaries

ROOT = Path(__file__).resolve().parents[3]
RELEASE = "v2.1.5"


def _child(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )


def test_one_cell_of_seed_b_cri_on_a_release(tmp_path: Path, request: pytest.FixtureRequest):
    if binaries.locate("containerd", RELEASE) is None:
        why = f"containerd {RELEASE} not built (fix: reconverge build ensure containerd@{RELEASE})"
        if request.config.getoption("reconverge_strict"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    out = _child(
        tmp_path,
        "suites/test_seed_b_cri.py",
        f"--reconverge-containerd={RELEASE}",
        f"--reconverge-artifacts={tmp_path}",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "reconverge containerd matrix" in out.stdout
    doc = json.loads((tmp_path / "matrix.json").read_text())
    assert doc["versions"] == [RELEASE]
    [cell] = doc["cells"]
    assert cell["case"] == "test_seed_b_cri.py::test_cri_stop_remove_pod_sandbox"
    assert (cell["version"], cell["outcome"], cell["behaviour"], cell["relation"]) == (
        RELEASE,
        "CONVERGED",
        "does not leak",
        "as declared",
    )
    data = json.loads((tmp_path / "verdicts.json").read_text())
    rows = data["verdicts"] if isinstance(data, dict) else data
    [row] = [r for r in rows if r["nodeid"].endswith(f"[fixed-{RELEASE}]")]
    assert row["versions"]["containerd_version"] == RELEASE
    assert row["versions"]["containerd"] == RELEASE  # what the running binary reported


def test_a_bad_release_is_one_usage_line(tmp_path: Path):
    out = _child(tmp_path, "suites/test_seed_b_cri.py", "--reconverge-containerd=1.7.0")
    assert out.returncode == 4, out.stdout + out.stderr
    assert "--reconverge-containerd: containerd 1.7.0 is not available" in out.stderr
    assert "Traceback" not in out.stderr
