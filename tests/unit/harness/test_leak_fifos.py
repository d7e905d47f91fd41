"""``fifos_held``: stdio FIFOs a process holds open, attributed to their container id."""

from __future__ import annotations

import os

from harness.checks import leaks


def test_fifos_held_by_a_process_are_attributed_to_their_container(tmp_path):
    path = tmp_path / "abc123-stdout"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # RDWR: no writer needed to open
    try:
        held = leaks.fifos_held(os.getpid())
        assert held.get("abc123") == [str(path)], held
    finally:
        os.close(fd)
    assert "abc123" not in leaks.fifos_held(os.getpid())


def test_fifos_of_a_gone_process_are_none():
    assert leaks.fifos_held(2**22 + 7) == {}
