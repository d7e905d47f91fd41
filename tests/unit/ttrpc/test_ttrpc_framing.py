"""Sans-IO framing: partial frames, several frames per chunk, oversize frames, EOF mid-frame."""

from __future__ import annotations

import pytest

from harness.ttrpc import framing


def test_partial_frames_byte_by_byte():
    wire = framing.encode(1, framing.TYPE_REQUEST, b"hello") + framing.encode(3, 1, b"")
    dec = framing.Decoder()
    frames = []
    for i in range(len(wire)):
        frames += dec.feed(wire[i : i + 1])
    assert frames == [framing.Frame(1, 1, 0, b"hello"), framing.Frame(3, 1, 0, b"")]
    assert not dec.eof()


def test_header_layout_matches_the_documented_example():
    # Connect for id "rh1": 41-byte body, stream 3, type request.
    assert framing.encode(3, framing.TYPE_REQUEST, b"x" * 41)[:10] == bytes.fromhex(
        "00000029000000030100"
    )


def test_oversize_frame_is_skipped_and_the_stream_continues():
    big = framing.MAX_DATA + 10
    wire = framing.HEADER.pack(big, 5, 1, 0) + b"z" * big + framing.encode(7, 1, b"after")
    dec = framing.Decoder()
    out = []
    for i in range(0, len(wire), 1 << 20):
        out += dec.feed(wire[i : i + (1 << 20)])
    assert out == [framing.Oversize(5, 1, big), framing.Frame(7, 1, 0, b"after")]


def test_encode_refuses_oversize():
    with pytest.raises(framing.FrameTooLarge, match="exceed maximum message size of 4194304"):
        framing.encode(1, 1, b"x" * (framing.MAX_DATA + 1))


def test_eof_mid_frame_is_detected():
    dec = framing.Decoder()
    assert dec.feed(framing.encode(1, 1, b"abcdef")[:8]) == []
    assert dec.eof()
