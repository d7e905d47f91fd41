"""Error types that reach a user.

Why a hierarchy: the CLI and the pytest plugin turn a ``ReconvergeError`` into one
actionable line and a non-zero exit, while anything else is a harness bug and keeps its
traceback. ``exit_code`` 2 means "the environment or the input is wrong" (bad failpoint
term, missing binary, port in use); 1 is reserved for "a check failed".
"""

from __future__ import annotations


class ReconvergeError(Exception):
    """A failure with one clear message and, where one exists, the command that fixes it."""

    exit_code: int = 2

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        """The single stderr line the CLI prints."""
        if self.fix:
            return f"reconverge: {self.message} (fix: {self.fix})"
        return f"reconverge: {self.message}"


class MissingBinary(ReconvergeError):
    """A component's executable is neither in the build cache nor on PATH."""

    def __init__(self, component: str, detail: str = "") -> None:
        extra = f": {detail}" if detail else ""
        super().__init__(f"{component} is not installed{extra}", fix="./ci/bootstrap")
        self.component = component


class ProviderFailed(ReconvergeError):
    """A real server did not start or died; the message carries the tail of its log."""


class PortInUse(ReconvergeError):
    """A requested listen address is taken by another process."""


class TooSlow(ReconvergeError):
    """A condition was not met before its deadline.

    Carries what was awaited, how long, and the last thing observed, so a timeout is
    never a bare "timed out".
    """

    exit_code = 1

    def __init__(self, what: str, waited: float, last_seen: object = None) -> None:
        msg = f"{what}: not reached within {waited:.1f} s"
        if last_seen is not None:
            msg += f"; last seen: {last_seen}"
        super().__init__(msg)
        self.what = what
        self.waited = waited
        self.last_seen = last_seen
