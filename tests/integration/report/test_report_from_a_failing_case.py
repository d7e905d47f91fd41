"""Acceptance: a deliberately failing case leaves a bundle that replays and renders.

The case is real: toxiproxy in front of the echo server, a latency toxic added and removed,
the ``echo.reply`` failpoint forced through ``RECONVERGE_FAILPOINTS`` (as a person would do
by hand), and a fixed variant whose expectation is wrong, so its verdict is DIVERGED. Then:

- ``artifacts/failures/<case>/`` holds the journal, the table, report.html, trace.json, meta;
- ``reconverge timeline <bundle>`` prints the T1…Tn table and the replay line;
- the replay line, run by a shell *without* ``RECONVERGE_FAILPOINTS`` in its environment,
  reproduces the verdict (so the line itself carries every behaviour-changing setting);
- report.html opens in headless chromium, offline, with no console error, shows the lanes,
  the shaded fault intervals, and jumps to the first violation;
- ``--reconverge-keep`` leaves the run dir, which ``reconverge timeline`` also reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.needs("toxiproxy")

FAULT = "echo.reply=1*error(injected)"

SUITE = textwrap.dedent(
    """
    import pytest

    from harness.checks import faults
    from harness.providers.echo import EchoServer, roundtrip
    from harness.verdict import Finding

    pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]


    def test_a_first_case_starts_toxiproxy(toxiproxy, verdict):
        verdict.record(suite="demo", case="first", variant="-", fault="none", outcome="PASSED")


    def test_echo_under_a_failpoint(toxiproxy, reconverge_run, failpoints, verdict):
        failpoints.load_env()  # RECONVERGE_FAILPOINTS, as given on the command line
        with EchoServer() as echo:
            proxy = toxiproxy.create("echo", echo.address)
            name = proxy.add_toxic("latency", latency=150, jitter=0)
            first = roundtrip(proxy.host, proxy.port, b"hello")
            proxy.remove_toxic(name)
            roundtrip(proxy.host, proxy.port, b"again")
        # the wrong expectation: this case believes the failpoint is harmless
        verdict.judge(
            suite="demo",
            case="echo under a failpoint",
            variant="fixed",
            fault="echo.reply from RECONVERGE_FAILPOINTS",
            findings=[Finding("reply", first == b"hello\\n", f"first reply {first!r}")],
            fired=faults.fired(reconverge_run.dir, verdict.since, failpoints=["echo.reply"]),
        )
    """
)


def _env(run_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("RECONVERGE_FAILPOINTS", None)
    env.pop("CI", None)  # strict would turn an INCONCLUSIVE replay into a different failure
    env["RECONVERGE_RUN_ROOT"] = str(run_root)
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the failing suite once; every test below reads what it left."""
    import tempfile

    work = tmp_path_factory.mktemp("failing-suite")
    (work / "test_demo_suite.py").write_text(SUITE)
    art = work / "artifacts"
    run_root = Path(tempfile.mkdtemp(prefix="rcvr", dir="/tmp"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "test_demo_suite.py",
            f"--reconverge-artifacts={art}",
            "--reconverge-seed=11",
            "--reconverge-keep",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(run_root, RECONVERGE_FAILPOINTS=FAULT),
        check=False,
    )
    text = out.stdout + out.stderr
    bundles = sorted((art / "failures").glob("*")) if (art / "failures").is_dir() else []
    yield {
        "code": out.returncode,
        "out": text,
        "art": art,
        "bundles": bundles,
        "work": work,
        "env": _env(run_root),
    }
    import shutil

    shutil.rmtree(run_root, ignore_errors=True)


def test_the_case_fails_with_its_verdict_and_leaves_one_bundle(failed: dict[str, Any]) -> None:
    assert failed["code"] == 1, failed["out"][-3000:]
    assert "DIVERGED" in failed["out"], failed["out"][-3000:]
    assert len(failed["bundles"]) == 1, (failed["bundles"], failed["out"][-2000:])
    bundle = failed["bundles"][0]
    for name in ("journal.jsonl", "timeline.txt", "report.html", "trace.json", "meta.json"):
        assert (bundle / name).is_file(), f"{name} missing from {bundle}"
    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["seed"] == 11
    assert meta["verdict"]["outcome"] == "DIVERGED"
    assert "first reply" in meta["failure"] and (bundle / "failure.txt").is_file()
    assert meta["settings"]["RECONVERGE_FAILPOINTS"] == FAULT
    # toxiproxy started in the first case: versions come from the whole run, not the window
    assert meta["versions"].get("toxiproxy", "").startswith("v2."), meta["versions"]


def test_timeline_of_the_bundle_prints_the_table_and_the_replay(failed: dict[str, Any]) -> None:
    bundle = failed["bundles"][0]
    shown = _cli("timeline", str(bundle), env=failed["env"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith("T1 ") for line in lines), shown.stdout[:2000]
    assert "echo.reply" in shown.stdout  # the trigger is in the table
    assert "toxic_added" in shown.stdout and "toxic_removed" in shown.stdout
    assert lines[-1].startswith("replay: "), lines[-1]


def test_the_replay_line_alone_reproduces_the_verdict(failed: dict[str, Any]) -> None:
    bundle = failed["bundles"][0]
    line = (bundle / "repro.txt").read_text().strip()
    assert "RECONVERGE_FAILPOINTS=" in line and "--reconverge-backend=process" in line, line
    assert ".venv/bin" not in line or Path(sys.executable).parent.name == "bin", line
    # the shell's environment has no RECONVERGE_FAILPOINTS: only the line can carry it
    again = subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        timeout=300,
        env=failed["env"],
        check=False,
    )
    out = again.stdout + again.stderr
    assert again.returncode == 1, out[-3000:]
    assert "DIVERGED" in out and "first reply" in out, out[-3000:]


def test_kept_run_dir_and_session_report(failed: dict[str, Any]) -> None:
    art: Path = failed["art"]
    kept = sorted((art / "runs").glob("r*"))
    assert len(kept) == 1, (kept, failed["out"][-1500:])
    shown = _cli("timeline", str(kept[0]), "--tail", "5", env=failed["env"])
    assert shown.returncode == 0, shown.stderr
    assert "T" in shown.stdout and "earlier records omitted" in shown.stdout
    assert (art / "report.html").is_file() and (art / "trace.json").is_file()
    out = art / "again.html"
    made = _cli("report", str(art), "-o", str(out), env=failed["env"])
    assert made.returncode == 0, made.stderr
    assert out.is_file() and (art / "again.trace.json").is_file()


def test_trace_has_one_process_per_lane(failed: dict[str, Any]) -> None:
    doc = json.loads((failed["bundles"][0] / "trace.json").read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"}
    assert {"toxiproxy", "echo", "checks", "faults"} <= names, names
    phases = {e["ph"] for e in doc["traceEvents"]}
    assert {"M", "X", "i"} <= phases, phases


def test_report_renders_in_chromium_with_lanes_and_the_first_violation(
    failed: dict[str, Any], open_page: Any
) -> None:
    shown = open_page(failed["bundles"][0] / "report.html")
    page = shown.page
    labels = page.locator(".lane-label").all_inner_texts()
    assert {"toxiproxy", "echo", "checks"} <= set(labels), labels
    assert page.locator("#lanes-svg").is_visible()
    assert page.locator("rect.fault").count() >= 1  # the latency toxic's life
    assert page.locator(".fault-mark").count() >= 1  # the failpoint trigger
    assert "DIVERGED" in page.locator("header").inner_text()
    assert "RECONVERGE_FAILPOINTS=" in page.locator("#repro").inner_text()
    assert "ERR injected" in page.locator("#failure").inner_text()  # the evidence, verbatim
    violation = page.locator("#first-violation")
    index = violation.get_attribute("data-index")
    assert index, "no first violation drawn"
    page.click("#jump")
    assert page.get_attribute("body", "data-jumped") == index
    row = page.locator(f"tr#T{index}")
    assert "hl" in (row.get_attribute("class") or "")
    assert "reply" in row.inner_text()  # the failing check is the first violation
    page.click("#zoom-in")
    page.fill("#filter", "echo.reply")
    assert "of" in page.locator("#filter-count").inner_text()
    assert shown.errors == [], shown.errors


def test_session_report_renders_in_chromium(failed: dict[str, Any], open_page: Any) -> None:
    shown = open_page(failed["art"] / "report.html")
    labels = shown.page.locator(".lane-label").all_inner_texts()
    assert "toxiproxy" in labels, labels
    assert shown.page.locator(".links a").count() == 1  # the failure bundle's page
    assert shown.errors == [], shown.errors
