"""Plumbing suite: every toxic on real toxiproxy in front of a loopback echo server.

Each case applies one fault and asserts the effect a client can observe: latency is
measured, a reset is seen as a reset, a black-holing timeout as a stall, limit_data as a
close after exactly N bytes. A last case injects a failpoint inside the server instead of
on the wire. If these pass, the fault plumbing the other suites stand on works.

Each row's "fired" count is evidence, not a constant: a toxic has no trigger record of its
own, so the case journals the effect it measured (``faults.observed``, with the
measurement) and the count is read back from the journal; the failpoint's count is its
``trigger`` records, checked against the failpoint's own counter.
"""

from __future__ import annotations

import socket
import time

import pytest

from harness.checks import faults
from harness.providers.echo import roundtrip

pytestmark = [pytest.mark.needs("toxiproxy"), pytest.mark.suite]

SUITE = "plumbing"


def _connect(proxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=timeout)


def _fired(run, verdict, effect: str, **measured: object) -> dict[str, int]:
    """Journal the effect this case measured, and read its count back from the journal."""
    faults.observed(effect, **measured)
    fired = faults.fired(run.dir, verdict.since, effects=[effect])
    assert fired[effect] >= 1, f"{effect}: the observation was not journaled ({fired})"
    return fired


def _read_until_eof(sock: socket.socket) -> tuple[bytes, int]:
    """All bytes until the peer closes, and how many recv calls returned data."""
    buf, chunks = b"", 0
    while True:
        data = sock.recv(65536)
        if not data:
            return buf, chunks
        buf += data
        chunks += 1


def test_baseline_passes_bytes(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    assert roundtrip(proxy.host, proxy.port, b"hello") == b"hello\n"
    verdict.record(
        suite=SUITE,
        case="baseline",
        variant="-",
        fault="none",
        outcome="PASSED",
        symptom="bytes echoed unchanged",
        fired=_fired(reconverge_run, verdict, "relayed unchanged", bytes=6),
    )


def test_latency_is_added(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    t0 = time.monotonic()
    roundtrip(proxy.host, proxy.port, b"warm")
    base = time.monotonic() - t0
    proxy.add_toxic("latency", latency=300, jitter=0)
    t0 = time.monotonic()
    assert roundtrip(proxy.host, proxy.port, b"slow") == b"slow\n"
    slowed = time.monotonic() - t0
    assert slowed >= 0.3, f"round trip {slowed:.3f}s with a 300 ms latency toxic"
    assert slowed > base
    verdict.record(
        suite=SUITE,
        case="latency",
        variant="-",
        fault="latency 300ms",
        outcome="PASSED",
        symptom=f"rtt {base * 1000:.0f}ms -> {slowed * 1000:.0f}ms",
        fired=_fired(
            reconverge_run, verdict, "latency", base_ms=round(base * 1000), ms=round(slowed * 1000)
        ),
    )


def test_bandwidth_throttles(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("bandwidth", rate=32)  # KB/s downstream
    payload = b"x" * 32 * 1024
    t0 = time.monotonic()
    assert roundtrip(proxy.host, proxy.port, payload) == payload + b"\n"
    took = time.monotonic() - t0
    assert took >= 0.8, f"32 KiB at 32 KB/s arrived in {took:.2f}s"
    verdict.record(
        suite=SUITE,
        case="bandwidth",
        variant="-",
        fault="rate 32KB/s",
        outcome="PASSED",
        symptom=f"32KiB in {took:.2f}s",
        fired=_fired(reconverge_run, verdict, "bandwidth", kib=32, seconds=round(took, 3)),
    )


def test_slow_close_delays_eof(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("slow_close", delay=400)
    with _connect(proxy) as s:
        # the clock starts before the send: slow_close's 400 ms start when the server closes,
        # which may happen before sendall returns to a descheduled test thread
        t0 = time.monotonic()
        s.sendall(b"BYE\n")  # the server closes at once
        data, _ = _read_until_eof(s)
        took = time.monotonic() - t0
    assert data == b""
    assert took >= 0.4, f"EOF after {took:.3f}s with slow_close 400 ms"
    verdict.record(
        suite=SUITE,
        case="slow_close",
        variant="-",
        fault="slow_close 400ms",
        outcome="PASSED",
        symptom=f"EOF after {took * 1000:.0f}ms",
        fired=_fired(reconverge_run, verdict, "slow_close", eof_ms=round(took * 1000)),
    )


def test_timeout_zero_is_a_stall(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("timeout", timeout=0)
    with _connect(proxy, timeout=0.7) as s:
        s.sendall(b"anyone?\n")
        with pytest.raises(socket.timeout):
            s.recv(1)  # black hole: no data, no close
    verdict.record(
        suite=SUITE,
        case="timeout",
        variant="-",
        fault="timeout 0 (black hole)",
        outcome="PASSED",
        symptom="no data and no close within 0.7s",
        fired=_fired(reconverge_run, verdict, "timeout 0", silent_s=0.7),
    )


def test_timeout_closes_after_n_ms(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("timeout", timeout=300)
    with _connect(proxy) as s:
        s.sendall(b"anyone?\n")
        t0 = time.monotonic()
        data, _ = _read_until_eof(s)
        took = time.monotonic() - t0
    assert data == b"", "data passed through a timeout toxic"
    assert took >= 0.25, f"closed after {took:.3f}s, expected about 300 ms"
    verdict.record(
        suite=SUITE,
        case="timeout",
        variant="-",
        fault="timeout 300ms",
        outcome="PASSED",
        symptom=f"closed without data after {took * 1000:.0f}ms",
        fired=_fired(reconverge_run, verdict, "timeout", closed_ms=round(took * 1000)),
    )


def test_reset_peer_is_a_reset(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("reset_peer", timeout=0)
    with _connect(proxy) as s:
        s.sendall(b"hello\n")
        with pytest.raises(ConnectionResetError):
            while s.recv(65536):
                pass
    verdict.record(
        suite=SUITE,
        case="reset_peer",
        variant="-",
        fault="reset_peer 0ms",
        outcome="PASSED",
        symptom="ECONNRESET on first data",
        fired=_fired(reconverge_run, verdict, "reset_peer", error="ECONNRESET"),
    )


def test_slicer_fragments_but_preserves(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("slicer", average_size=8, size_variation=0, delay=2000)
    payload = b"y" * 256
    with _connect(proxy) as s:
        s.sendall(payload + b"\nBYE\n")
        data, chunks = _read_until_eof(s)
    assert data == payload + b"\n"
    assert chunks > 4, f"expected many slices, got {chunks} recv chunk(s)"
    verdict.record(
        suite=SUITE,
        case="slicer",
        variant="-",
        fault="slices of 8 bytes",
        outcome="PASSED",
        symptom=f"257 bytes in {chunks} chunks, intact",
        fired=_fired(reconverge_run, verdict, "slicer", chunks=chunks),
    )


def test_limit_data_closes_after_n_bytes(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    proxy.add_toxic("limit_data", bytes=10)
    with _connect(proxy) as s:
        s.sendall(b"0123456789abcdefghij\n")
        data, _ = _read_until_eof(s)
    assert data == b"0123456789", f"got {data!r}"
    verdict.record(
        suite=SUITE,
        case="limit_data",
        variant="-",
        fault="limit_data 10 bytes",
        outcome="PASSED",
        symptom="closed after exactly 10 bytes",
        fired=_fired(reconverge_run, verdict, "limit_data", bytes=len(data)),
    )


def test_down_refuses_then_recovers(toxiproxy, echo_server, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        _connect(proxy, timeout=2).close()
    assert roundtrip(proxy.host, proxy.port, b"back") == b"back\n"
    verdict.record(
        suite=SUITE,
        case="down",
        variant="-",
        fault="proxy disabled",
        outcome="PASSED",
        symptom="connect refused, then echo again",
        fired=_fired(reconverge_run, verdict, "down", error="ECONNREFUSED"),
    )


def test_failpoint_drops_one_reply(toxiproxy, echo_server, failpoints, reconverge_run, verdict):
    proxy = toxiproxy.create("echo", echo_server.address)
    failpoints.enable("echo.reply", "1*drop")
    with _connect(proxy, timeout=0.7) as s:
        s.sendall(b"first\n")
        with pytest.raises(socket.timeout):
            s.recv(1)
        s.settimeout(5)
        s.sendall(b"second\n")
        assert s.recv(64) == b"second\n"
    st = failpoints.status("echo.reply")
    assert st.triggers == 1 and st.hits == 2, st
    fired = faults.fired(reconverge_run.dir, verdict.since, failpoints=["echo.reply"])
    assert fired == {"echo.reply": st.triggers}, f"journal {fired} vs failpoint status {st}"
    verdict.record(
        suite=SUITE,
        case="failpoint",
        variant="-",
        fault="echo.reply=1*drop",
        outcome="PASSED",
        symptom="first reply swallowed, second delivered",
        fired=fired,
    )
