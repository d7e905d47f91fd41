"""Sans-IO ttrpc framing: a 10-byte header, then ``length`` bytes of protobuf.

| bytes | field | encoding |
|---|---|---|
| 0-3 | payload length (header excluded) | uint32 big-endian |
| 4-7 | stream id | uint32 big-endian |
| 8 | type | 1 request, 2 response, 3 data |
| 9 | flags | 0 for unary calls |

A payload over 4 MiB is not an error for the connection: the receiver discards its bytes
and the server answers ResourceExhausted on that stream, as Go's ttrpc does. A header
that never completes (peer closed mid-frame) is reported by :meth:`Decoder.eof`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size
MAX_DATA = 4 << 20

TYPE_REQUEST = 0x01
TYPE_RESPONSE = 0x02
TYPE_DATA = 0x03


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame."""

    stream_id: int
    type: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversize:
    """A frame whose payload exceeded :data:`MAX_DATA`; its bytes were discarded."""

    stream_id: int
    type: int
    length: int


class FrameTooLarge(ValueError):
    """Refused to encode a payload over :data:`MAX_DATA`."""


def encode(stream_id: int, type_: int, payload: bytes, flags: int = 0) -> bytes:
    """Header + payload as one buffer (written with a single send, never interleaved)."""
    if len(payload) > MAX_DATA:
        raise FrameTooLarge(
            f"message length {len(payload)} exceed maximum message size of {MAX_DATA}"
        )
    return HEADER.pack(len(payload), stream_id, type_, flags) + payload


class Decoder:
    """Feed bytes in any chunking; get whole frames (and oversize notices) out."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # payload bytes of an oversize frame still to discard

    def feed(self, data: bytes) -> list[Frame | Oversize]:
        """Consume ``data``; return every frame it completed."""
        self._buf += data
        out: list[Frame | Oversize] = []
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return out
            if len(self._buf) < HEADER_SIZE:
                return out
            length, stream_id, type_, flags = HEADER.unpack_from(self._buf)
            if length > MAX_DATA:
                del self._buf[:HEADER_SIZE]
                self._skip = length
                out.append(Oversize(stream_id, type_, length))
                continue
            if len(self._buf) < HEADER_SIZE + length:
                return out
            payload = bytes(self._buf[HEADER_SIZE : HEADER_SIZE + length])
            del self._buf[: HEADER_SIZE + length]
            out.append(Frame(stream_id, type_, flags, payload))

    def eof(self) -> bool:
        """True when the peer closed in the middle of a frame."""
        return bool(self._buf) or bool(self._skip)
