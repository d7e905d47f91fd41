"""A shim removes a per-id file only while it is still its own.

Why: every path of a shim is named by (containerd address, namespace, id), so a re-created
id's new daemon owns the very paths the previous daemon is still leaving. These tests pin
the checks one module at a time (real sockets and processes, no containerd); the life cycle
under containerd 1.6.20 is ``tests/integration/shim/test_recreate_same_id.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.shim import daemon
from harness.shim.paths import ShimPaths, file_id, owner_lock, unlink_if_same


def _bind(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    return s


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ShimPaths:
    monkeypatch.setenv("RECONVERGE_RUN_DIR", str(tmp_path))
    p = ShimPaths.of("/run/ctd.sock", "ns", "again")
    os.makedirs(p.dir)
    return p


def test_unlink_if_same_keeps_a_successors_socket(paths: ShimPaths) -> None:
    old = _bind(paths.socket)
    mine = file_id(paths.socket)
    os.unlink(paths.socket)  # the old daemon retired it; a new start binds the path again
    new = _bind(paths.socket)
    try:
        assert file_id(paths.socket) != mine
        assert unlink_if_same(paths.socket, mine) is False
        assert os.path.exists(paths.socket)
        assert unlink_if_same(paths.socket, file_id(paths.socket)) is True
        assert not os.path.exists(paths.socket)
        assert unlink_if_same(paths.socket, None) is False
    finally:
        old.close()
        new.close()


def _try_lock(lockfile: str) -> str:
    """Whether another process can take the lock right now (non-blocking)."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "    print('took')\n"
        "except OSError:\n"
        "    print('busy')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, lockfile], capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip() or out.stderr.strip()


def test_owner_lock_excludes_another_process_and_is_released(paths: ShimPaths) -> None:
    with owner_lock(paths):
        assert _try_lock(paths.lockfile) == "busy"
    assert _try_lock(paths.lockfile) == "took"


def _daemon(paths: ShimPaths) -> daemon.Daemon:
    d = daemon.Daemon({"address": "/run/ctd.sock", "namespace": "ns", "id": "again"})
    assert d.paths.key == paths.key
    return d


def test_exit_cleanup_keeps_every_file_of_a_successor(paths: ShimPaths) -> None:
    d = _daemon(paths)
    old_sock, old_ctl = _bind(paths.socket), _bind(paths.control)
    d.socket_id, d.control_id = file_id(paths.socket), file_id(paths.control)
    d.retire()  # the accepted Shutdown: both paths free before the reply
    assert not os.path.exists(paths.socket) and not os.path.exists(paths.control)
    successor = os.getpid() + 1_000_000  # a pid that is not ours
    new_sock, new_ctl = _bind(paths.socket), _bind(paths.control)
    Path(paths.pidfile).write_text(str(successor))
    Path(paths.registry).write_text(json.dumps({"pid": successor}))
    try:
        d._cleanup_own_files()
        kept = [paths.socket, paths.control, paths.pidfile, paths.registry]
        assert [p for p in kept if not os.path.exists(p)] == []
    finally:
        for s in (old_sock, old_ctl, new_sock, new_ctl):
            s.close()


def test_exit_cleanup_removes_its_own_files(paths: ShimPaths) -> None:
    d = _daemon(paths)
    sock, ctl = _bind(paths.socket), _bind(paths.control)
    d.socket_id, d.control_id = file_id(paths.socket), file_id(paths.control)
    Path(paths.pidfile).write_text(str(os.getpid()))
    Path(paths.registry).write_text(json.dumps({"pid": os.getpid()}))
    try:
        d._cleanup_own_files()
        left = [paths.socket, paths.control, paths.pidfile, paths.registry]
        assert [p for p in left if os.path.exists(p)] == []
    finally:
        sock.close()
        ctl.close()
