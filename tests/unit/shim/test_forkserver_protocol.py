"""The fork server's side of the launcher's wire format, and the launcher's cache entry.

The request is built here the way ``launcher.c`` builds it, then also sent by the real
compiled launcher to a server socket this test reads, so both ends are checked against
the same decoder.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from harness.shim import forkserver, launcher


def _encode(cwd: str, argv: list[str], env: list[str]) -> bytes:
    body = struct.pack("<II", len(argv), len(env))
    body += b"".join(s.encode() + b"\0" for s in [cwd, *argv, *env])
    return forkserver.MAGIC + struct.pack("<I", len(body)) + body


def _send(data: bytes, fds: list[int]) -> socket.socket:
    a, b = socket.socketpair()
    a.sendmsg([data[:8]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("3i", *fds))])
    a.sendall(data[8:])
    a.close()
    return b


def test_a_request_round_trips_with_its_three_fds(tmp_path: Path) -> None:
    r, w = os.pipe()
    conn = _send(_encode("/bundle", ["shim", "-id", "x", "start"], ["A=1", "B=x=y"]), [r, w, w])
    try:
        req = forkserver.receive(conn)
    finally:
        conn.close()
    assert (req.cwd, req.argv, req.env) == (
        "/bundle",
        ["shim", "-id", "x", "start"],
        {
            "A": "1",
            "B": "x=y",
        },
    )
    assert len(req.fds) == 3
    os.write(req.fds[1], b"through the passed fd")
    assert os.read(r, 100) == b"through the passed fd"
    for fd in (*req.fds, r, w):
        os.close(fd)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"XXXX" + struct.pack("<I", 0), "bad magic"),
        (_encode("/", ["a"], [])[:-3], "closed in the body"),
        (forkserver.MAGIC + struct.pack("<I", 8) + struct.pack("<II", 5, 0), "expected 6"),
    ],
)
def test_a_bad_request_is_refused_and_its_fds_closed(data: bytes, why: str) -> None:
    r, w = os.pipe()
    conn = _send(data, [r, w, w])
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(forkserver.BadRequest, match=why):
        forkserver.receive(conn)
    conn.close()
    assert set(os.listdir("/proc/self/fd")) <= before  # the received copies are closed
    os.close(r)
    os.close(w)


def test_a_connection_closed_at_once_is_a_probe() -> None:
    a, b = socket.socketpair()
    a.close()
    with pytest.raises(forkserver.Probe):
        forkserver.receive(b)
    b.close()


def test_the_compiled_launcher_speaks_the_same_format(tmp_path: Path) -> None:
    """The real launcher against a one-shot server: request decoded, status relayed."""
    path = str(tmp_path / "fs.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    seen: list[forkserver.Request] = []

    def serve() -> None:
        conn, _ = server.accept()
        req = forkserver.receive(conn)
        seen.append(req)
        os.write(req.fds[1], b"unix:///addr")  # what start prints, on containerd's stdout
        for fd in req.fds:
            os.close(fd)
        conn.sendall(struct.pack("<i", 7))
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    out = subprocess.run(
        [str(launcher.ensure()), "-namespace", "n", "-id", "c", "start"],
        input=b"options",
        capture_output=True,
        env={"RECONVERGE_SHIM_FORK": path, "X": "1"},
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    t.join(timeout=30)
    server.close()
    assert out.returncode == 7 and out.stdout == b"unix:///addr", out
    (req,) = seen
    assert req.argv[1:] == ["-namespace", "n", "-id", "c", "start"]
    assert req.cwd == str(tmp_path)
    assert req.env == {"RECONVERGE_SHIM_FORK": path, "X": "1"}


def test_launcher_is_cached_by_a_hash_of_its_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    assert launcher.locate() is None
    built = launcher.ensure()
    assert built.parent.name.startswith(launcher.source_hash())
    assert built.is_relative_to(tmp_path / "bin" / launcher.COMPONENT)
    mtime = built.stat().st_mtime_ns
    assert launcher.ensure() == built and built.stat().st_mtime_ns == mtime  # not rebuilt


def test_without_the_launcher_source_the_warm_path_steps_aside(tmp_path: Path, monkeypatch) -> None:
    """A wheel without launcher.c: one clear error from ensure, and containerd gets the cold
    shim (for_run returns None) instead of a run that cannot start."""
    from harness.errors import ReconvergeError
    from harness.shim import warm

    monkeypatch.setenv("RECONVERGE_CACHE", str(tmp_path))
    monkeypatch.setattr(launcher, "SOURCE", tmp_path / "launcher.c")
    with pytest.raises(ReconvergeError, match=r"launcher's source .* is missing"):
        launcher.ensure()
    assert warm.for_run(None) is None  # type: ignore[arg-type] - never reaches the run
