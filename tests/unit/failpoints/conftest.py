"""Shared fixtures for the failpoints unit tests (no harness imports: the package is standalone)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import failpoints


@pytest.fixture
def registry() -> failpoints.Registry:
    """A private registry, so a test never sees another test's points or observers."""
    return failpoints.Registry(seed=1234)


@pytest.fixture(autouse=True)
def _reset_default_registry() -> Iterator[None]:
    """Tests that use the module-level functions leave the process-wide registry clean."""
    yield
    failpoints.reset()


@pytest.fixture
def triggered() -> Callable[[failpoints.Registry], list[failpoints.Trigger]]:
    """Attach a recording observer to a registry and return the list it fills."""

    def attach(reg: failpoints.Registry) -> list[failpoints.Trigger]:
        seen: list[failpoints.Trigger] = []
        reg.add_observer(seen.append)
        return seen

    return attach
