"""A real headless browser for the report tests: Debian's chromium driven by Playwright.

Why Debian's chromium and not Playwright's own download: this machine (and CI) can install
packages but not fetch browser builds; ``executable_path`` points Playwright's driver at
the system browser. Missing either one skips locally and fails under CI (``./ci/bootstrap``
installs both: chromium from APT_PACKAGES, playwright from the dev extra).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("RECONVERGE_CHROMIUM", "/usr/bin/chromium")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (fix: ./ci/bootstrap)", pytrace=False)
    pytest.skip(f"{reason} (fix: ./ci/bootstrap)")


@dataclass
class Page:
    """A loaded page and everything its console and script errors said."""

    page: Any
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def errors(self) -> list[tuple[str, str]]:
        """Console errors and warnings, and uncaught script errors."""
        return [(k, t) for k, t in self.messages if k in ("error", "warning", "pageerror")]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Debian chromium under Playwright, for one module at a time.

    Not session-wide: Playwright's sync API keeps its asyncio loop running in the main
    thread while it is open, and every later test that calls ``asyncio.run`` (ttrpc, the
    shim, the leak detector) then fails with "cannot be called from a running event loop".
    Starting chromium costs ~1 s per module.
    """
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as p:
        # --no-sandbox: the tests run as root, where chromium's sandbox refuses to start
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Any]:
    """``open_page(path) -> Page``: a file loaded offline, console and page errors recorded."""
    contexts: list[Any] = []

    def load(path: Path) -> Page:
        # offline: any request that leaves file:// fails the page, so a CDN would show
        ctx = chromium.new_context(offline=True, viewport={"width": 1400, "height": 900})
        contexts.append(ctx)
        page = ctx.new_page()
        out = Page(page)
        page.on("console", lambda m: out.messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: out.messages.append(("pageerror", str(e))))
        page.on("requestfailed", lambda r: out.messages.append(("error", f"request {r.url}")))
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=10_000)
        return out

    yield load
    for ctx in contexts:
        ctx.close()
