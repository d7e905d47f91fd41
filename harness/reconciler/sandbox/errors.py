"""Errors the reconciler returns to its caller, with CubeSandbox's error-code names."""

from __future__ import annotations

TASK_STATE_INVALID = "TaskStateInvalid"
TASK_PAUSE_FAILED = "TaskPauseFailed"
TASK_RESUME_FAILED = "TaskResumeFailed"
NOT_FOUND = "NotFound"
STOP_FAILED = "StopFailed"


class SandboxError(Exception):
    """A refused or failed sandbox operation: an error code and the original message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
