"""Headless Chromium for the tests that look at the operator's interfaces as a person would:
Debian's Chromium (``scripts/ensure-chromium.sh`` installs it, ``make test`` calls it) driven
by Playwright for Python, which never downloads a browser of its own here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("STUDPERF_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A page of a fresh headless Chromium; fails (never skips) naming the fix when the
    browser or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's package "
            "(scripts/ensure-chromium.sh), or run `apt-get install -y chromium`"
        )
    try:
        from playwright.sync_api import ViewportSize, sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: `make setup` installs the dev extra")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport=ViewportSize(width=1440, height=900))
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def shows(page: Any, what: str, condition: Callable[[], Any], timeout: float = 120) -> Any:
    """Poll ``condition`` (it reads the page) until it is truthy; fail naming ``what``, with
    the page's text, when it never is. Generous: two cores run the whole stack."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = page.inner_text("body")[:3000]
            pytest.fail(f"the page {page.url} never showed {what}; it shows:\n{text}")
        page.wait_for_timeout(1000)


def attribute_is(locator: Any, name: str, value: str) -> Callable[[], bool]:
    """A condition for ``shows``: the first element of ``locator`` has ``name`` = ``value``."""
    return lambda: bool(locator.count()) and locator.first.get_attribute(name) == value


def at_least(locator: Any, count: int) -> Callable[[], bool]:
    """A condition for ``shows``: ``locator`` matches ``count`` elements or more."""
    return lambda: locator.count() >= count


def screenshot(page: Any, folder: Path, name: str, full_page: bool = False) -> Path:
    path = folder / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
