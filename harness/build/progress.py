"""Progress while a Go build runs: a heartbeat line, and the last build's time to compare.

Why: a cold Kubernetes build takes many minutes on two cores and ``go build`` prints nothing
until it fails; CI logs that stay silent for ten minutes look hung (and some CI systems kill
silent jobs). So a thread prints one line at least every :data:`PIPE_INTERVAL` seconds when
the output is not a terminal, and redraws one ``\\r`` line every second when it is.

The "last time" comes from ``$RECONVERGE_CACHE/last-build-seconds.json`` (written after each
build, so it survives ``rm -rf`` of an entry to force a rebuild) or, failing that, from the
manifests of other cached versions of the same component.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from harness.build import cache

PIPE_INTERVAL = 10.0  # seconds between heartbeat lines on a pipe (the promise is <= 15 s)
TTY_INTERVAL = 1.0
LAST_FILE = "last-build-seconds.json"


def fmt_seconds(seconds: float) -> str:
    """``75`` -> ``1m15s``; short and fixed-format so log lines can be compared by eye."""
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _last_path() -> Path:
    return cache.root() / LAST_FILE


def _load() -> dict[str, float]:
    try:
        data = json.loads(_last_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def record(component: str, version: str, seconds: float) -> None:
    """Remember how long ``component@version`` took (atomic replace; last writer wins)."""
    data = _load()
    data.pop(f"{component}@{version}", None)  # re-insert so it becomes the newest
    data[f"{component}@{version}"] = round(seconds, 1)
    path = _last_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def last_seconds(component: str, version: str) -> float | None:
    """The last build time of this version, else of another version, else from a manifest."""
    data = _load()
    if f"{component}@{version}" in data:
        return data[f"{component}@{version}"]
    same = [v for k, v in data.items() if k.partition("@")[0] == component]
    if same:
        return same[-1]
    for m in cache.cached():
        if m.get("component") == component and isinstance(m.get("build_seconds"), int | float):
            return float(m["build_seconds"])
    return None


class Heartbeat:
    """One status line, printed by a daemon thread until :meth:`stop`.

    ``detail`` is polled for extra text (e.g. how many packages ``go build -v`` has
    compiled so far); it must be cheap and thread-safe (reading an int is).
    """

    def __init__(
        self,
        what: str,
        *,
        step: tuple[int, int] = (1, 1),
        last: float | None = None,
        detail: Callable[[], str] = lambda: "",
        out: TextIO | None = None,
        tty: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        label: str = "build",
    ) -> None:
        self.what = what
        self.label = label
        self.step = step
        self.last = last
        self.detail = detail
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.interval = interval or (TTY_INTERVAL if self.tty else PIPE_INTERVAL)
        self.clock = clock
        self.t0 = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        """The status text as of now."""
        k, n = self.step
        counter = f"[{k}/{n}] " if n > 1 or self.label == "build" else ""
        elapsed = fmt_seconds(self.clock() - self.t0)
        parts = [f"{self.label}: {counter}{self.what}: {elapsed} elapsed"]
        if self.last is not None:
            noun = "build" if self.label == "build" else "time"
            parts.append(f"last {noun} took {fmt_seconds(self.last)}")
        extra = self.detail()
        if extra:
            parts.append(extra)
        return ", ".join(parts)

    def beat(self) -> None:
        """Print the line once: ``\\r``-redrawn on a terminal, a new line on a pipe."""
        text = self.line()
        if self.tty:
            self.out.write("\r\x1b[K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def start(self) -> Heartbeat:
        """Start the printing thread (a daemon: it never keeps the interpreter alive)."""
        self.t0 = self.clock()
        self._thread = threading.Thread(target=self._run, name="build-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop the thread, clear a terminal line; returns the elapsed seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()
        return self.clock() - self.t0

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def last_line(log: Path, width: int = 80) -> Callable[[], str]:
    """A ``detail`` for :class:`Heartbeat`: the newest line a step wrote to its log.

    Why: a silent subprocess (debootstrap, ``kind create``) writes to a log file, and the
    last line of it says *what* it is doing now; reading ≤ 4 KiB from the end stays cheap.
    """

    def detail() -> str:
        try:
            with open(log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f"now: {tail[-1].strip()[:width]}" if tail else ""

    return detail
