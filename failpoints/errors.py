"""The exceptions failpoints raise, and why each has the base class it has.

- ``FailpointSyntaxError`` is a ``ValueError``: a bad term is bad input, and callers that
  already turn ``ValueError`` into a usage error (CLIs, HTTP 400) keep working. Its ``str()``
  is exactly one line, because it is printed as-is by command lines.
- ``FailpointError`` is what ``error(msg)`` raises: an ordinary ``Exception`` that a call site
  maps to its protocol's error reply, just like containerd returns ``errors.New(msg)``.
- ``FailpointPanic`` derives from ``BaseException`` on purpose. A Go ``panic`` in a ttrpc
  handler kills the shim; in Python a generic ``except Exception`` would turn it into an
  error reply and hide the crash being simulated. Sites that want a real crash catch it and
  call ``os._exit``.
- ``FailpointHangTimeout`` is a ``TimeoutError``: a ``hang`` whose caller's deadline passed
  before anyone released it, so deadline handling written for real timeouts applies.
"""

from __future__ import annotations

__all__ = [
    "FailpointError",
    "FailpointHangTimeout",
    "FailpointPanic",
    "FailpointSyntaxError",
]


class FailpointSyntaxError(ValueError):
    """A term (or a ``name=term;…`` list) that does not follow the grammar.

    Attributes:
        text: the whole term text as given (for a list entry: that entry's term).
        column: 1-based position in ``text`` where the problem starts.
        reason: what is wrong, without position ("unknown action 'bogus'").
        name: the failpoint the term was meant for, when known.
        source: where the text came from (e.g. ``RECONVERGE_FAILPOINTS``), when known.
    """

    def __init__(
        self,
        text: str,
        column: int,
        reason: str,
        *,
        name: str | None = None,
        source: str | None = None,
    ) -> None:
        self.text = text
        self.column = column
        self.reason = reason
        self.name = name
        self.source = source
        super().__init__(self._line())

    def _line(self) -> str:
        quoted = f"'{_printable(self.text)}'"
        subject = f"{self.name}={quoted}" if self.name is not None else quoted
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}bad failpoint term {subject} at column {self.column}: {self.reason}"

    def with_context(
        self, *, name: str | None = None, source: str | None = None
    ) -> FailpointSyntaxError:
        """The same error naming the failpoint and/or where the text came from."""
        return FailpointSyntaxError(
            self.text,
            self.column,
            self.reason,
            name=self.name if name is None else name,
            source=self.source if source is None else source,
        )

    def __str__(self) -> str:
        return self._line()

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only fields survive pickling (multiprocessing, xdist)
        return (
            _rebuild_syntax_error,
            (self.text, self.column, self.reason, self.name, self.source),
        )


def _printable(text: str) -> str:
    """Escape what is not printable, so the message stays on one line whatever the text holds."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _rebuild_syntax_error(
    text: str, column: int, reason: str, name: str | None, source: str | None
) -> FailpointSyntaxError:
    return FailpointSyntaxError(text, column, reason, name=name, source=source)


class FailpointError(Exception):
    """Raised by an ``error(msg)`` action; ``str(e)`` is the message, ``e.name`` the point."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name


class FailpointPanic(BaseException):
    """Raised by a ``panic`` action; deliberately not an ``Exception`` (see module docstring)."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name


class FailpointHangTimeout(TimeoutError):
    """A ``hang`` was still blocked when the caller's deadline passed."""

    def __init__(self, name: str, waited: float) -> None:
        super().__init__(f"failpoint {name}: hang not released within {waited:.3f}s")
        self.name = name
        self.waited = waited

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.waited))
