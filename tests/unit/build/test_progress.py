"""Build progress: the heartbeat line, its thread, and the remembered build times."""

from __future__ import annotations

import io
import json
import threading

from harness.build import cache, progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_line_names_step_elapsed_last_and_detail():
    clock = Clock()
    beat = progress.Heartbeat(
        "kubernetes v1.34.4",
        step=(3, 8),
        last=610,
        detail=lambda: "412 packages compiled",
        out=io.StringIO(),
        tty=False,
        clock=clock,
    )
    clock.now += 75
    assert beat.line() == (
        "build: [3/8] kubernetes v1.34.4: 1m15s elapsed, last build took 10m10s, "
        "412 packages compiled"
    )
    unknown = progress.Heartbeat("coredns v1.12.1", out=io.StringIO(), tty=False, clock=clock)
    assert unknown.line() == "build: [1/1] coredns v1.12.1: 0s elapsed"


def test_pipe_gets_whole_lines_and_a_tty_one_redrawn_line():
    pipe, tty = io.StringIO(), io.StringIO()
    progress.Heartbeat("x", out=pipe, tty=False).beat()
    progress.Heartbeat("x", out=tty, tty=True).beat()
    assert pipe.getvalue().endswith("\n") and "\r" not in pipe.getvalue()
    assert tty.getvalue().startswith("\r") and not tty.getvalue().endswith("\n")


def test_default_intervals_keep_the_promise():
    assert progress.PIPE_INTERVAL <= 15
    assert progress.Heartbeat("x", out=io.StringIO(), tty=False).interval == progress.PIPE_INTERVAL
    assert progress.Heartbeat("x", out=io.StringIO(), tty=True).interval == progress.TTY_INTERVAL


class Signalling(io.StringIO):
    """A stream that tells the test when the thread has written twice."""

    def __init__(self) -> None:
        super().__init__()
        self.twice = threading.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        if self.getvalue().count("\n") >= 2:
            self.twice.set()
        return n


def test_thread_beats_until_stopped_while_the_caller_blocks():
    out = Signalling()
    with progress.Heartbeat("x", out=out, tty=False, interval=0.01):
        assert out.twice.wait(10), "no heartbeat while the build 'ran'"
    n = out.getvalue().count("\n")
    assert out.getvalue().count("\n") == n  # nothing after stop() returned
    assert threading.active_count() >= 1 and not any(
        t.name == "build-heartbeat" for t in threading.enumerate()
    )


def test_stop_clears_a_tty_line():
    out = io.StringIO()
    beat = progress.Heartbeat("x", out=out, tty=True, interval=1000).start()
    beat.stop()
    assert out.getvalue().endswith("\r\x1b[K")


def test_last_seconds_exact_then_other_version_then_manifests(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    assert progress.last_seconds("etcd", "v3.6.5") is None
    d = cache.entry_dir("etcd", "v3.6.16", "go1.26.8")
    d.mkdir(parents=True)
    (d / "etcd").write_text("")
    m = {"component": "etcd", "version": "v3.6.16", "main": "etcd", "build_seconds": 35}
    (d / "manifest.json").write_text(json.dumps(m))
    assert progress.last_seconds("etcd", "v3.6.5") == 35
    progress.record("etcd", "v3.6.16", 40.04)
    progress.record("etcd", "v3.6.99", 50)
    assert progress.last_seconds("etcd", "v3.6.16") == 40.0
    assert progress.last_seconds("etcd", "v3.6.5") == 50, "the newest other version"
    progress.record("etcd", "v3.6.16", 41)
    assert progress.last_seconds("etcd", "v3.6.5") == 41, "re-recorded is newest"
    data = json.loads((tmp_path / progress.LAST_FILE).read_text())
    assert list(data) == ["etcd@v3.6.99", "etcd@v3.6.16"]


def test_a_corrupt_times_file_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    (tmp_path / progress.LAST_FILE).write_text("{nope")
    assert progress.last_seconds("etcd", "v3.6.5") is None
    progress.record("etcd", "v3.6.5", 1)
    assert progress.last_seconds("etcd", "v3.6.5") == 1


def test_fmt_seconds():
    assert progress.fmt_seconds(0.4) == "0s"
    assert progress.fmt_seconds(59.6) == "1m00s"
    assert progress.fmt_seconds(3725) == "62m05s"


def test_a_step_heartbeat_names_its_tool_and_the_log_s_newest_line(tmp_path):
    log = tmp_path / "debootstrap.log"
    log.write_text("$ debootstrap ...\nI: Retrieving Packages\nI: Extracting libc6...\n")
    times = iter([0.0, 47.0])
    beat = progress.Heartbeat(
        "debootstrap",
        label="kind-node",
        detail=progress.last_line(log),
        out=io.StringIO(),
        tty=False,
        clock=lambda: next(times),
    )
    assert beat.line() == "kind-node: debootstrap: 47s elapsed, now: I: Extracting libc6..."


def test_last_line_of_a_missing_or_empty_log_is_nothing(tmp_path):
    assert progress.last_line(tmp_path / "absent.log")() == ""
    (tmp_path / "empty.log").write_text("")
    assert progress.last_line(tmp_path / "empty.log")() == ""
