"""Playwright (sync API) driving Debian's chromium against pytest-django's live server.

Without chromium the browser tests are skipped locally, and fail under CI (CI must run them).
Every request to a host other than the live server is aborted: map tiles never hang a test,
and a page that needs the outside world to work shows it here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
SCREENSHOT_DIR = Path(os.environ.get("PARKWATCH_SCREENSHOT_DIR", tempfile.gettempdir()))


@pytest.fixture(scope="session")
def chromium_browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: CI must run the browser tests, not skip them.")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


def open_context(chromium_browser, live_server, settings, viewport: str = "phone", **options):
    server = urlsplit(live_server.url)
    context = chromium_browser.new_context(
        **VIEWPORTS[viewport],
        locale="en-GB",
        timezone_id="Europe/Madrid",
        base_url=live_server.url,
        **options,
    )
    blocked: list[str] = []

    def only_the_live_server(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob"):
            route.continue_()
        elif url.netloc != server.netloc:
            blocked.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", only_the_live_server)
    context.set_default_timeout(15_000)
    context.blocked_requests = blocked
    return context


@pytest.fixture
def browser_context(chromium_browser, live_server, settings, transactional_db):
    """A phone-sized browser (mobile first); call `open_context` for other sizes."""
    context = open_context(chromium_browser, live_server, settings)
    yield context
    context.close()


def watch_errors(page) -> list[str]:
    """JavaScript errors and failed same-site requests on a page, to assert there are none."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}")
            if message.type == "error" and "ERR_FAILED" not in message.text
            else None
        ),
    )
    return errors


def screenshot(page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"parkwatch-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
