"""The page, the trace, the artifact loader, the replay line, and the CLI's exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ReconvergeError
from harness.journal.record import Record
from harness.report import bundle, html, lanes, source, trace


def rec(t: float, proc: str, component: str, event: str, **fields: Any) -> Record:
    return Record(50.0 + t, 1_700_000_000.0 + t, 9, proc, component, event, fields)


JOURNAL = [
    rec(0.0, "pytest-main", "run", "started", seed=3),
    rec(0.1, "pytest-main", "toxiproxy", "toxic_added", proxy="e", toxic="latency"),
    rec(0.2, "shim:sb", "shim", "request", method="Delete", stream_id=1),
    rec(0.3, "shim:sb", "shim", "reply", method="Delete", stream_id=1, outcome="ok"),
    rec(0.4, "pytest-main", "toxiproxy", "toxic_removed", proxy="e", toxic="latency_downstream"),
    rec(0.5, "pytest-main", "check", "leak", ok=False, symptom="<leaked & shown>"),
    rec(0.6, "pytest-main", "verdict", "DIVERGED", suite="s", case="c", variant="fixed"),
]


def test_page_is_self_contained_and_escaped() -> None:
    pic = lanes.build(JOURNAL)
    ctx = html.Context(
        title="t::c[fixed]",
        verdicts=[{"suite": "s", "case": "c", "variant": "fixed", "outcome": "DIVERGED",
                   "fired": {"shim.Delete.before": 0}, "findings": [
                       {"check": "leak", "ok": False, "observed": True, "symptom": "x"}]}],
        meta={"repro": "cd /x && reconverge repro 'a@1'", "seed": 3, "versions": {"k": "1"}},
        repeats={"s::c[fixed]": ["DIVERGED", "DIVERGED", "CONVERGED"]},
    )  # fmt: skip
    page = html.render(pic, ctx)
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?https?:""", page)
    assert "@import" not in page and "fetch(" not in page
    assert "&lt;leaked &amp; shown&gt;" in page and "<leaked & shown>" not in page
    assert page.count('class="lane-label"') == len(pic.lanes)
    assert 'id="first-violation"' in page and 'data-index="6"' in page
    assert 'id="T6" class="violation"' in page
    assert "DIVERGED 2/3, CONVERGED 1/3" in page
    assert "never fired" in page


def test_trace_events_one_pid_per_lane() -> None:
    pic = lanes.build(JOURNAL)
    doc = json.loads(trace.render(pic, metadata={"seed": 3}))
    meta = {e["args"]["name"]: e["pid"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert set(pic.lanes) | {"faults"} == set(meta)
    assert len(set(meta.values())) == len(meta)
    delete = next(e for e in doc["traceEvents"] if e["name"] == "Delete")
    assert delete["ph"] == "X" and delete["pid"] == meta["shim:sb"]
    assert delete["ts"] == pytest.approx(200_000, abs=1) and delete["dur"] == pytest.approx(
        100_000, abs=1
    )
    fault = next(e for e in doc["traceEvents"] if e.get("cat") == "fault")
    assert fault["ph"] == "X" and fault["dur"] == pytest.approx(300_000, abs=1)
    assert any(e.get("cat") == "violation" and e["s"] == "g" for e in doc["traceEvents"])
    assert doc["otherData"]["seed"] == "3"


def _write(path: Path, records: list[Record]) -> None:
    path.write_text("".join(r.to_json() + "\n" for r in records))


def test_source_reads_bundle_run_dir_and_file(tmp_path: Path) -> None:
    b = tmp_path / "bundle"
    b.mkdir()
    _write(b / "journal.jsonl", JOURNAL)
    (b / "meta.json").write_text(json.dumps({"nodeid": "t::c", "verdict": {"outcome": "X"}}))
    ev = source.load(b)
    assert ev.kind == "bundle" and len(ev.records) == len(JOURNAL) and ev.title == "t::c"
    assert ev.verdicts == [{"outcome": "X"}]
    r = tmp_path / "run"
    (r / "journal").mkdir(parents=True)
    _write(r / "journal" / "a.1.jsonl", JOURNAL[:3])
    _write(r / "journal" / "b.2.jsonl", JOURNAL[3:])
    with (r / "journal" / "b.2.jsonl").open("a") as f:
        f.write('{"mono": 1, "torn')  # a process killed mid-write
    (r / "run.json").write_text(json.dumps({"seed": 5}))
    ev = source.load(r)
    assert ev.kind == "run" and [x.event for x in ev.records] == [x.event for x in JOURNAL]
    assert ev.meta["seed"] == 5
    assert ev.verdicts[0]["outcome"] == "DIVERGED"  # from the journal's verdict record
    assert source.load(b / "journal.jsonl").kind == "file"


def test_source_refuses_missing_empty_and_journal_less(tmp_path: Path) -> None:
    with pytest.raises(ReconvergeError, match="no such bundle or run dir"):
        source.load(tmp_path / "nope")
    with pytest.raises(ReconvergeError, match="holds no journal"):
        source.load(tmp_path)
    (tmp_path / "journal.jsonl").write_text("\n")
    with pytest.raises(ReconvergeError, match="is empty"):
        source.load(tmp_path)


@pytest.mark.parametrize("cmd", ["timeline", "report"])
def test_cli_exits_2_with_one_line_on_a_missing_artifact(cmd: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", cmd, str(tmp_path / "nonexistent")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "no such bundle or run dir" in out.stderr


class _Config:
    """The two things repro_line asks a pytest config for (unit test of one module)."""

    def __init__(self, root: Path, **options: object) -> None:
        self.rootpath = root
        self.options = {"reconverge_seed": 77, **options}

    def getoption(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)


def test_repro_line_carries_every_behaviour_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONVERGE_FAILPOINTS", "a=1*error(x y)")
    monkeypatch.setenv("RECONVERGE_SANDBOX_BUGS", "runtime.delete_not_retriable")
    monkeypatch.setenv("RECONVERGE_CONTAINERD_BIN", "/opt/containerd")
    monkeypatch.delenv("RECONVERGE_SHIM_TOXIPROXY", raising=False)
    config = _Config(
        tmp_path,
        reconverge_backend="container",
        reconverge_kube="kind",
        reconverge_time_scale=0.5,
        reconverge_sandbox_time_scale=0.05,
        reconverge_strict=True,
    )
    line = bundle.repro_line(config, "suites/t.py::test_x[fixed]")  # type: ignore[arg-type]
    assert line.startswith(f"cd {tmp_path} && ")
    assert "RECONVERGE_FAILPOINTS='a=1*error(x y)'" in line
    assert "RECONVERGE_SANDBOX_BUGS=runtime.delete_not_retriable" in line
    assert "RECONVERGE_CONTAINERD_BIN=/opt/containerd" in line
    addopts = re.search(r"PYTEST_ADDOPTS='([^']*)'", line)
    assert addopts is not None
    assert addopts.group(1).split() == [
        "--reconverge-backend=container",
        "--reconverge-kube=kind",
        "--reconverge-time-scale=0.5",
        "--reconverge-sandbox-time-scale=0.05",
        "--reconverge-strict",
    ]
    assert line.endswith(" repro 'suites/t.py::test_x[fixed]@77'")
    exe = line.split(" repro ")[0].rsplit(" ", 1)[-1]
    assert exe == str(Path(sys.executable).parent / "reconverge")  # not a hard-coded .venv


def test_reconverge_exe_without_a_script_falls_back_to_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python3"))
    assert bundle.reconverge_exe() == f"{tmp_path / 'bin' / 'python3'} -m harness.cli"


def test_a_long_journal_pages_its_tail_with_absolute_t_numbers() -> None:
    records = [rec(i * 0.001, "pytest-main", "echo", "tick", i=i) for i in range(50)]
    records.append(rec(0.06, "pytest-main", "check", "leak", ok=False, symptom="late"))
    page, tr = bundle.render_report(records, title="t", meta={}, page_limit=10)
    assert 'id="T42"' in page and 'id="T51" class="violation"' in page
    assert 'id="T41"' not in page  # outside the window
    assert "T1…T41 are not on this page" in page
    events = json.loads(tr)["traceEvents"]
    assert sum(1 for e in events if e.get("name") == "tick") == 50  # the trace has them all


def test_assertion_lines_pick_pytests_e_lines() -> None:
    text = (
        "def f():\n>   assert x\nE   AssertionError: c [fixed]: DIVERGED\nE     leak: pid 5\nf.py:3"
    )
    assert bundle.assertion_lines(text) == "AssertionError: c [fixed]: DIVERGED\n  leak: pid 5"
    assert bundle.assertion_lines("only\ntext") == "only\ntext"


def test_keep_moves_a_run_dir_out_of_the_swept_run_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONVERGE_RUN_ROOT", str(tmp_path / "rcv"))
    assert bundle.kept_root(None) == tmp_path / "rcv.kept"
    assert bundle.kept_root(tmp_path / "art") == tmp_path / "art" / "runs"
    run_dir = tmp_path / "rcv" / "r0000beef"
    (run_dir / "journal").mkdir(parents=True)
    (run_dir / "journal" / "p.1.jsonl").write_text(JOURNAL[0].to_json() + "\n")
    kept = bundle.keep_run_dir(run_dir, bundle.kept_root(None))
    assert kept == tmp_path / "rcv.kept" / "r0000beef" and not run_dir.exists()
    assert source.load(kept).kind == "run"
