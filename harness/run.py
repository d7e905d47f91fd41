"""A run: one process tree that owns real servers, with an id, a directory and a seed.

Why a run directory under a short root: unix socket paths (shim sockets, containerd's
socket) must stay under 108 bytes, and one directory per run makes "what did this run
leave behind" a single question for the janitor.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from harness import journal
from harness.janitor import (
    ENV_RUN_ID,
    Janitor,
    UndoReport,
    errno_text,
    load_resources,
    proc_is,
    proc_start_time,
    save_resources,
    undo_report,
)

ENV_RUN_ROOT = "RECONVERGE_RUN_ROOT"
ENV_SEED = "RECONVERGE_SEED"


def run_root() -> Path:
    """Where run directories live (``$RECONVERGE_RUN_ROOT``, default ``/tmp/rcv``)."""
    return Path(os.environ.get(ENV_RUN_ROOT, "/tmp/rcv"))


@dataclass
class Run:
    """The current run; create with :func:`start`, end with :meth:`close`."""

    id: str
    dir: Path
    seed: int
    purpose: str
    janitor: Janitor
    started: float = field(default_factory=time.monotonic)
    closed: bool = False
    own_journal: journal.Journal | None = None
    previous_journal: journal.Journal | None = None

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a process this run starts: marked, journaled, seeded."""
        env = dict(os.environ)
        env[ENV_RUN_ID] = self.id
        env[journal.sink.ENV_RUN_DIR] = str(self.dir)
        env[ENV_SEED] = str(self.seed)
        if extra:
            env.update(extra)
        return env

    def path(self, *parts: str, mkdir: bool = False) -> Path:
        """A path inside the run directory (optionally created, mode 0700)."""
        p = self.dir.joinpath(*parts)
        if mkdir:
            p.mkdir(parents=True, exist_ok=True, mode=0o700)
        return p

    def close(self, *, keep_dir: bool = False) -> list[str]:
        """Clean up everything the run started, then remove its directory."""
        if self.closed:
            return []
        self.closed = True
        journal.emit("run", "closing", run=self.id)
        done = self.janitor.cleanup()
        report = self.janitor.report or UndoReport()
        for f in report.failures:
            journal.emit("run", "cleanup_failed", what=f.what, error=f.error, retry=f.retry)
            print(f"reconverge: clean-up left {f.line()}", file=sys.stderr)
        if self.own_journal is not None:
            self.own_journal.close()
            if self.previous_journal is not None and journal.current() is self.own_journal:
                journal.set_current(self.previous_journal)
        retry = report.retry()
        if retry:
            # the owner is about to exit: the next sweep retries these, nothing else
            with contextlib.suppress(OSError):
                save_resources(self.dir, retry)
        elif not keep_dir:
            left = _remove_tree(self.dir)
            if left:  # the next sweep tries again (its owner will be gone)
                print(f"reconverge: run dir {self.dir} left: {left}", file=sys.stderr)
            with contextlib.suppress(OSError):
                self.dir.parent.rmdir()  # only succeeds when no other run is live
        _unregister(self)
        return done


def start(*, purpose: str, seed: int | None = None, proc: str | None = None) -> Run:
    """Create a run: sweep dead runs first, then make the directory and the journal.

    The sweep never raises and never blocks the start: what it could not undo is printed
    (one line each) and journaled in the new run, and the dead run's record keeps only
    what a later sweep can still retry.
    """
    swept = sweep()
    for line in swept.failures:
        print(f"reconverge: janitor left {line}", file=sys.stderr)
    root = run_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(PermissionError):
        os.chmod(root, 0o700)
    if seed is None:
        env_seed = os.environ.get(ENV_SEED)
        seed = int(env_seed) if env_seed else secrets.randbelow(2**31)
    run_id = "r" + secrets.token_hex(4)
    run_dir = root / run_id
    run_dir.mkdir(mode=0o700)
    record = {
        "id": run_id,
        "pid": os.getpid(),
        "start": proc_start_time(os.getpid()),
        "purpose": purpose,
        "seed": seed,
        "argv": sys.argv,
        "wall": time.time(),
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    run = Run(id=run_id, dir=run_dir, seed=seed, purpose=purpose, janitor=Janitor(run_id, run_dir))
    run.previous_journal = journal.current()
    run.own_journal = journal.configure(run_dir, proc or purpose)
    journal.emit("run", "started", run=run_id, seed=seed, purpose=purpose)
    for line in swept.failures:
        journal.emit("run", "sweep_left", what=line)
    _register(run)
    return run


# -- dead-run sweep ---------------------------------------------------------------------


@dataclass
class SweepReport:
    """What a sweep did: one line per dead run swept, one line per thing it left."""

    runs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Run lines, then ``left …`` lines (what ``reconverge janitor --sweep`` prints)."""
        return self.runs + [f"left {line}" for line in self.failures]

    @property
    def clean(self) -> bool:
        """True when nothing was left behind."""
        return not self.failures


def _owner_alive(run_dir: Path) -> bool:
    try:
        rec = json.loads((run_dir / "run.json").read_text())
        return proc_is(int(rec["pid"]), rec.get("start"))
    except (OSError, ValueError, KeyError, TypeError):
        # no (readable) record: a run being created right now, or garbage; judge by age
        try:
            return time.time() - run_dir.stat().st_mtime < 60
        except OSError:
            return False


def sweep(*, root: Path | None = None) -> SweepReport:
    """Clean up every run under ``root`` whose owner process is gone.

    Live runs (another pytest, an ``up`` session) are left alone, and so is a dead run
    another sweeper holds right now. Never raises: a run whose undo fails in part gets
    one failure line per resource left (naming it and the errno); its record then keeps
    only what can be retried, and the directory goes once nothing is left to retry.
    """
    report = SweepReport()
    try:
        root = root or run_root()
        if not root.is_dir():
            return report
        run_dirs = sorted(root.iterdir())
    except OSError as exc:
        report.failures.append(f"run root {root}: {exc}")
        return report
    for run_dir in run_dirs:
        try:
            _sweep_one(run_dir, report)
        except Exception as exc:  # a bug here must still not block the next run
            report.failures.append(f"run {run_dir.name}: sweep failed: {type(exc).__name__}: {exc}")
    return report


def _sweep_one(run_dir: Path, report: SweepReport) -> None:
    if not run_dir.is_dir() or run_dir.is_symlink() or _owner_alive(run_dir):
        return
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return  # another sweeper finished it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another sweeper is on it right now
        if not run_dir.is_dir():
            return
        undone = undo_report(list(reversed(load_resources(run_dir))), run_dir.name, run_dir)
        report.failures += [f.line() for f in undone.failures]
        retry = undone.retry()
        if retry:
            save_resources(run_dir, retry)  # run.json stays: its dead owner marks it sweepable
        else:
            left = _remove_tree(run_dir)
            if left:
                report.failures.append(f"run dir {run_dir}: {left}")
    finally:
        os.close(fd)
    what = "; ".join(undone.done) if undone.done else "nothing to undo"
    if undone.failures:
        kept = f", record kept for {len(retry)} to retry" if retry else ""
        what += f"; {len(undone.failures)} left{kept}"
    report.runs.append(f"swept {run_dir.name}: {what}")


def _remove_tree(path: Path) -> str:
    """rmtree that says what it could not remove (first error and errno), '' when gone."""
    errors: list[tuple[str, BaseException]] = []

    def on_error(fn: object, where: str, exc_info: tuple) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            errors.append((where, exc_info[1]))

    shutil.rmtree(path, onerror=on_error)
    if not errors:
        return ""
    where, exc = errors[0]
    return f"{errno_text(exc)} at {where}" + (f" and {len(errors) - 1} more" if errors[1:] else "")


# -- exit and signal handling -----------------------------------------------------------

_live: list[Run] = []
_live_lock = threading.Lock()
_handlers_installed = False


def _register(run: Run) -> None:
    global _handlers_installed
    with _live_lock:
        _live.append(run)
        if not _handlers_installed:
            atexit.register(_close_all)
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _on_sigterm)
            _handlers_installed = True


def _unregister(run: Run) -> None:
    with _live_lock:
        if run in _live:
            _live.remove(run)


def _close_all() -> None:
    for run in list(_live):
        run.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into the same unwinding as Ctrl-C so fixtures tear down."""
    raise KeyboardInterrupt(f"signal {signum}")
