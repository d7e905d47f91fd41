"""The kind cache lock: re-entrant in a process, exclusive across processes, bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.kind import lock

PROBE = """
import sys
from pathlib import Path
from harness.errors import ReconvergeError
from harness.kind import lock
try:
    with lock.held(Path(sys.argv[1]), timeout=float(sys.argv[2])):
        print("took it")
except ReconvergeError as exc:
    print(exc.one_line())
"""


def _other_process(root: Path, timeout: float) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), str(timeout)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_reentrant_here_exclusive_elsewhere(tmp_path: Path) -> None:
    with lock.held(tmp_path), lock.held(tmp_path):  # ensure -> merge -> seed
        refused = _other_process(tmp_path, 0.5)
    assert "another process has been building" in refused and "fuser" in refused
    assert _other_process(tmp_path, 0.5) == "took it"  # released on exit
