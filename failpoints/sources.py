"""Where specs come from besides code: the environment and container annotations.

Why both: a process we start (containerd, a shim daemon) inherits ``RECONVERGE_FAILPOINTS``
and must fail on its first call without any control connection, while per-container faults
travel in the bundle's OCI annotations exactly as containerd's own failpoint shim reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import FailpointSyntaxError
from .grammar import Terms, check_name, parse, parse_assignments
from .registry import Registry, default

__all__ = ["ANNOTATION_PREFIX", "ENV_VAR", "from_annotations", "load_env"]

ENV_VAR = "RECONVERGE_FAILPOINTS"
ANNOTATION_PREFIX = "io.containerd.runtime.v2.shim.failpoint."


def load_env(
    environ: Mapping[str, str] = os.environ,
    var: str = ENV_VAR,
    *,
    registry: Registry | None = None,
) -> dict[str, Terms]:
    """Enable every ``name=spec`` of ``environ[var]`` (``;``-separated), all or nothing.

    An unset or blank variable enables nothing. Returns what was enabled.

    Raises:
        FailpointSyntaxError: one line naming the variable, the failpoint and the column;
            nothing was enabled.
    """
    text = environ.get(var, "")
    if not text.strip():
        return {}
    specs = parse_assignments(text, source=var)
    return (registry or default).enable_many(specs)


def from_annotations(
    annotations: Mapping[str, str], prefix: str = ANNOTATION_PREFIX
) -> dict[str, Terms]:
    """Parse every annotation ``<prefix><suffix>`` into ``{suffix: Terms}`` (containerd style).

    Nothing is enabled: the caller (a shim) maps each suffix, e.g. a ttrpc method name, to
    its own point names. Other annotations are ignored.

    Raises:
        FailpointSyntaxError: a value does not parse, or a suffix is not a valid point name;
            the error names the annotation key.
    """
    result: dict[str, Terms] = {}
    for key, value in annotations.items():
        if not key.startswith(prefix):
            continue
        suffix = key[len(prefix) :]
        source = f"annotation {key}"
        try:
            check_name(suffix)
        except ValueError as exc:
            raise FailpointSyntaxError(key, len(prefix) + 1, str(exc), source=source) from None
        try:
            result[suffix] = parse(value.strip())
        except FailpointSyntaxError as exc:
            raise exc.with_context(name=suffix, source=source) from None
    return result
