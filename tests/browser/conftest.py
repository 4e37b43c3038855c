"""Playwright fixtures: Debian's Chromium driving the live test server.

Without Chromium the browser tests are skipped on a workstation but fail in CI
(``CI`` set), so a CI image that lost its browser cannot pass silently.
"""

from __future__ import annotations

import binascii
import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CIVICGRID_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("CIVICGRID_SCREENSHOTS", "/tmp"))


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Browsing:
    """One browser context on the live server; script and server errors fail the test."""

    def __init__(self, browser, live_server, *, locale: str, viewport: dict):
        self.base = live_server.url
        self.context = browser.new_context(locale=locale, viewport=viewport)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A refused request (4xx) is part of some flows and shows in the page; a server
        # error never is. Chromium also logs each failed load; the status says enough.
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, msg) -> None:
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(msg.text)

    def _response(self, response) -> None:
        if response.status >= 500:
            self.errors.append(f"{response.status} {response.url}")

    def url(self, path: str) -> str:
        return self.base + path

    def sign_in(self, username: str, password: str, *, totp_key: str | None = None) -> None:
        """Through the sign-in form, and the two-factor form when the account has a device."""
        page = self.page
        page.goto(self.url("/accounts/login/"))
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        with page.expect_navigation():
            page.click("form button[type=submit]")
        if totp_key is not None:
            from django_otp.oath import TOTP

            assert "two-factor" in page.url, page.url
            token = TOTP(binascii.unhexlify(totp_key)).token()
            page.fill("input[name=code]", f"{token:06d}")
            with page.expect_navigation():
                page.click("form button.primary")
        assert "/accounts/login/" not in page.url, "signed in"

    def mark_map_drawn(self) -> None:
        """Mark the area polygons drawn now, so :meth:`wait_for_map_redraw` can tell new ones."""
        self.page.evaluate(
            "() => document.querySelectorAll('path.area-path')"
            ".forEach((p) => p.setAttribute('data-stale', ''))"
        )

    def wait_for_map_redraw(self, count: int) -> None:
        """Wait until the map has replaced every marked polygon with ``count`` new ones.

        Fails with the map's status line when it could not load its data.
        """
        self.page.wait_for_function(
            """(n) => {
              const status = document.getElementById("map-status");
              if (status && !status.hidden && status.classList.contains("error")) return true;
              const paths = document.querySelectorAll("path.area-path");
              return paths.length === n
                && !Array.from(paths).some((p) => p.hasAttribute("data-stale"));
            }""",
            arg=count,
        )
        status = self.page.locator("#map-status")
        failed = status.is_visible() and "error" in (status.get_attribute("class") or "")
        assert not failed, status.inner_text()

    def screenshot(self, name: str) -> Path:
        path = SCREENSHOTS / f"civicgrid_{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def browsing(browser, live_server):
    """``browsing(locale="en-US", width=1440)`` opens a fresh context; all close after the test."""
    opened: list[Browsing] = []

    def open_context(*, locale: str = "en-US", width: int = 1440, height: int = 900) -> Browsing:
        b = Browsing(
            browser, live_server, locale=locale, viewport={"width": width, "height": height}
        )
        opened.append(b)
        return b

    yield open_context
    errors = [e for b in opened for e in b.errors]
    for b in opened:
        b.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def demo_city(transactional_db):
    """The demo city: areas, buildings, grid staff, departments and one demo account per role."""
    from geo.demo import seed_demo_city

    return seed_demo_city()


@pytest.fixture
def admin_totp_key(demo_city):
    """The demo admin's confirmed TOTP device (admins must pass two-factor), as a hex key."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import User
    from geo.demo import DEMO_ADMIN_USERNAME

    admin = User.objects.get(username=DEMO_ADMIN_USERNAME)
    return TOTPDevice.objects.create(user=admin, name="browser test", confirmed=True).key
