"""Debian's headless Chromium, driven by Playwright, on the live server and nothing else.

Every request to a host other than the live server is blocked and recorded, and
every console error and uncaught exception is recorded; a test fails if either
list is not empty once it is done (except console errors it said to expect).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    expect,
    sync_playwright,
)

from tests.conftest import require

if TYPE_CHECKING:
    from tests.conftest import LiveServer

CHROMIUM = "/usr/bin/chromium"  # Debian's; the CHROMIUM variable may name another
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000  # every Playwright wait, so a stuck page fails instead of hanging


@dataclass
class BrowserLog:
    errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_console_error(self, pattern: str) -> None:
        """A console error this test provokes on purpose (Chromium logs every 4xx)."""
        self.expected.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Without Chromium the browser tests skip and say why (and fail in CI)."""
    executable = Path(os.environ.get("CHROMIUM", CHROMIUM))
    require(
        executable.is_file(),
        f"Debian's chromium is not installed at {executable} "
        "(apt-get install chromium; .ci/run does it): browser tests cannot run",
    )
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_FLAGS, timeout=60_000
        )
        yield chromium
        chromium.close()


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def open_page(
    browser: Browser, live_server: LiveServer, browser_log: BrowserLog
) -> Iterator[Callable[..., Page]]:
    """Open a page (a fresh context: pass viewport, has_touch...) on the live server."""
    contexts: list[BrowserContext] = []
    allowed = urlsplit(live_server.url).netloc

    def block_offsite(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == allowed:
            route.continue_()
        else:
            browser_log.offsite.append(url)
            route.abort("blockedbyclient")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            browser_log.errors.append(f"console: {message.text} at {message.location}")

    def open_(path: str = "/", **context_options: Any) -> Page:
        context = browser.new_context(base_url=live_server.url, **context_options)
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.route("**/*", block_offsite)
        page = context.new_page()
        page.on("console", console)
        page.on("pageerror", lambda error: browser_log.errors.append(f"pageerror: {error}"))
        response = page.goto(path, wait_until="load")
        assert response is not None and response.ok, f"GET {path}: {response}"
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not browser_log.offsite, f"requests to other hosts: {browser_log.offsite}"
    assert not browser_log.unexpected_errors(), "\n".join(browser_log.unexpected_errors())
