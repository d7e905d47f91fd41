"""Status codes and errors, mapped the way containerd's errdefs reads them.

Why the mapping matters: containerd continues a task Delete only on NotFound or
``ttrpc: closed``; any other code aborts before Shutdown. A fault injected as the wrong
code would test a different path than the seed describes.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """gRPC status codes (ttrpc reuses them)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# How containerd's errdefs.FromGRPC classifies a code (everything else is "unknown").
_ERRDEFS_CLASS = {
    Code.CANCELLED: "canceled",
    Code.INVALID_ARGUMENT: "invalid argument",
    Code.DEADLINE_EXCEEDED: "deadline exceeded",
    Code.NOT_FOUND: "not found",
    Code.ALREADY_EXISTS: "already exists",
    Code.FAILED_PRECONDITION: "failed precondition",
    Code.UNIMPLEMENTED: "not implemented",
    Code.UNAVAILABLE: "unavailable",
}


def errdefs_class(code: int) -> str:
    """The error class containerd derives from a status code."""
    try:
        return _ERRDEFS_CLASS.get(Code(code), "unknown")
    except ValueError:
        return "unknown"


def code_by_name(name: str) -> Code | None:
    """``NotFound`` / ``NOT_FOUND`` / ``not_found`` -> Code.NOT_FOUND (None if unknown)."""
    key = name.replace("-", "_")
    key = "".join(("_" + c if c.isupper() and i else c) for i, c in enumerate(key)).upper()
    key = key.replace("__", "_")
    return Code.__members__.get(key) or Code.__members__.get(name.upper())


class TTRPCError(Exception):
    """A call ended with a non-OK status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = Code(code) if code in Code._value2member_map_ else code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message}: {errdefs_class(self.code)}"


class Closed(TTRPCError):
    """The connection is gone; every pending call fails with this (Go's ErrClosed)."""

    def __init__(self) -> None:
        super().__init__(Code.UNAVAILABLE, "ttrpc: closed")

    def __str__(self) -> str:
        return "ttrpc: closed"
