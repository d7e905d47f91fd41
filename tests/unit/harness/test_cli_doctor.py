"""``reconverge doctor``: a root check with its own fix, and ``--json`` with the table's facts.

The root check is a unit test of :mod:`harness.cli.doctor` alone (``os.geteuid`` faked:
this machine runs as root); ``--json`` is checked on the real command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import doctor

BIN = Path(sys.executable).parent / "reconverge"
KEYS = {
    "component",
    "status",
    "usable",
    "required",
    "version",
    "path",
    "source",
    "backend",
    "reason",
    "fix",
}


def test_root_row_is_ok_for_euid_0(monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    row = doctor.root_row()
    assert row.usable and row.required and not row.reason


def test_non_root_is_a_required_unusable_row_with_its_own_fix(monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    row = doctor.root_row()
    assert row.required and not row.usable
    assert "euid 1000" in row.reason and "root" in row.reason
    assert "sudo" in row.fix
    assert doctor.exit_code([row]) == 2


def test_non_root_doctor_exits_2_and_prints_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    assert doctor.main() == 2
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("not usable: root"))
    assert "euid 1000" in line and "sudo -E" in line


def test_non_root_json_names_root_not_usable(monkeypatch, capsys):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    assert doctor.main(as_json=True) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "root" in doc["not_usable"]
    root = next(c for c in doc["components"] if c["component"] == "root")
    assert root["usable"] is False and "sudo" in root["fix"]


def _doctor_json(env: dict[str, str] | None = None) -> tuple[int, dict]:
    out = subprocess.run(
        [str(BIN), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def test_doctor_json_has_the_tables_facts_and_its_exit_code():
    code, doc = _doctor_json()
    assert doc["schema"] == doctor.JSON_SCHEMA
    assert code == doc["exit_code"] and doc["ok"] is (code == 0)
    comps = {c["component"]: c for c in doc["components"]}
    assert {"root", "toxiproxy", "containerd", "ctr", "runc", "socat"} <= set(comps)
    assert all(set(c) == KEYS for c in doc["components"])
    required_bad = [c["component"] for c in doc["components"] if c["required"] and not c["usable"]]
    assert doc["not_usable"] == required_bad and (code == 2) is bool(required_bad)
    for c in doc["components"]:
        if c["source"]:
            assert c["source"] in ("env", "cache", "PATH") and os.path.exists(c["path"]), c


def test_doctor_json_missing_binary_is_exit_2_with_reason_and_fix(tmp_path: Path):
    code, doc = _doctor_json({"RECONVERGE_TOXIPROXY_BIN": str(tmp_path / "nope")})
    assert code == 2 and "toxiproxy" in doc["not_usable"]
    tp = next(c for c in doc["components"] if c["component"] == "toxiproxy")
    assert tp["usable"] is False and tp["reason"] and tp["fix"] == doctor.FIX


@pytest.mark.skipif(os.geteuid() != 0, reason="the table's own root row decides the exit")
def test_text_and_json_agree_on_the_exit_code():
    text = subprocess.run([str(BIN), "doctor"], capture_output=True, text=True, timeout=120)
    code, _doc = _doctor_json()
    assert text.returncode == code


def test_a_wheel_without_the_kube_extra_is_told_which_extra_to_install(monkeypatch):
    from harness.providers import kube

    def no_client() -> list[dict[str, str]]:
        raise ModuleNotFoundError("No module named 'kubernetes'")

    monkeypatch.setattr(kube, "describe", no_client)
    (row,) = doctor._kube_rows()
    assert not row.usable and row.required
    assert row.fix == "pip install 'reconverge[kube]'"
