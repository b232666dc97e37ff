"""A real Chromium (Debian's, driven by Playwright's Python package) against real servers.

Playwright's own browser download is never used: the system browser is launched by path. Without
one, or without Playwright, the tests skip with the reason, unless EVENTSTATE_REQUIRE_BROWSER=1
(CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps",
                 "--no-first-run"]


def chromium_path() -> str | None:
    """The system Chromium: EVENTSTATE_CHROMIUM, else the first of the usual names on PATH."""
    if explicit := os.environ.get("EVENTSTATE_CHROMIUM"):
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("EVENTSTATE_REQUIRE_BROWSER"):
        pytest.fail(f"EVENTSTATE_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless system Chromium per test module.

    Not per session: Playwright's sync API keeps its event loop running in this thread until it is
    stopped, and every later test that calls `asyncio.run` would then fail.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        _unavailable("no Chromium found (apt-get install chromium, or set EVENTSTATE_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page plus everything it requested and every error it logged."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Any]:
    """Open pages in fresh browser contexts (own storage); all closed at the end of the test."""
    contexts: list[Any] = []

    def open_(url: str, *, width: int = 1280, height: int = 900,
              routes: dict[Any, Any] | None = None) -> Watched:
        context = chromium.new_context(viewport={"width": width, "height": height}, timezone_id="UTC")
        contexts.append(context)
        for pattern, handler in (routes or {}).items():
            context.route(pattern, handler)
        watched = Watched(context.new_page())
        watched.page.set_default_timeout(10_000)
        watched.page.goto(url)
        return watched

    yield open_
    for context in contexts:
        context.close()
