"""ci/lib/heartbeat.bash: the line bootstrap prints while apt-get and pip are silent.

Real bash and real child processes; the interval is shortened through the environment. The
assertions are about what must (not) happen — a tick shows the log's last line, nothing ticks
after the step, the ticker dies with its script — never about how many ticks fit into a time
window, so a loaded machine cannot turn them red.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from harness.wait import wait_for

REPO = Path(__file__).resolve().parents[3]
LIB = REPO / "ci" / "lib" / "heartbeat.bash"


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RECONVERGE_HEARTBEAT_SECONDS": "0.1",
        "LOG": str(tmp_path / "log"),
        "OUT": str(tmp_path / "out"),
    }


def _bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; . {LIB}; {script}"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ticks_with_elapsed_time_and_the_logs_last_line_while_the_step_runs(tmp_path):
    # the step writes its log, then stays silent until a tick has shown that line (or 60 s)
    out = _bash(
        'step() { echo "Unpacking containerd" >> "$LOG"; '
        'for _ in $(seq 1200); do grep -q Unpacking "$OUT" && return 0; sleep 0.05; done; '
        "return 3; }; "
        'heartbeat "apt-get install" "$LOG" step > "$OUT"; cat "$OUT"',
        tmp_path,
    )
    assert out.returncode == 0, (out.stdout, out.stderr)
    tick = next(line for line in out.stdout.splitlines() if "Unpacking" in line)
    assert tick.startswith("bootstrap: apt-get install: "), out.stdout
    assert tick.endswith("s — Unpacking containerd"), out.stdout


def test_a_failing_step_keeps_its_status_and_stops_the_ticker(tmp_path):
    out = _bash(
        'rc=0; heartbeat step "$LOG" bash -c "sleep 0.3; exit 7" || rc=$?; '
        'echo "rc=$rc"; sleep 0.5; echo end',
        tmp_path,
    )
    lines = out.stdout.splitlines()
    assert "rc=7" in lines, (out.stdout, out.stderr)
    # nothing ticks after the step returned: the ticker was stopped and waited for
    assert lines[lines.index("rc=7") + 1 :] == ["end"], out.stdout


def test_the_ticker_ends_on_its_own_when_the_script_is_killed(tmp_path):
    pidfile = tmp_path / "ticker"
    step = f'step() {{ echo "$_heartbeat_pid" > {pidfile}; sleep 60; }}'
    script = f". {LIB}; {step}; heartbeat s /dev/null step"
    proc = subprocess.Popen(
        ["bash", "-c", script],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ticker = int(
            wait_for(
                lambda: pidfile.exists() and pidfile.read_text().strip(),
                timeout=30,
                what="the ticker's pid written by the step",
            )
        )
        proc.kill()  # SIGKILL: no trap runs; the ticker must notice on its own
        proc.wait(timeout=30)
        wait_for(
            lambda: _gone(ticker),
            timeout=30,
            what=f"ticker {ticker} gone after its script was killed",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the step's `sleep 60`, same session


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
