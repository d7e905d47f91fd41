"""Structured journal: every process of a run appends JSON lines into one run directory.

Why one file per process: appends never interleave, a crashed process loses at most its
last line, and the merger orders everything by the system-wide monotonic clock
(CLOCK_MONOTONIC is shared by all processes on a Linux host).
"""

from harness.journal.record import Record
from harness.journal.sink import Journal, configure, current, emit, from_env, set_current

__all__ = ["Journal", "Record", "configure", "current", "emit", "from_env", "set_current"]
