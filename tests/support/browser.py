"""Debian's Chromium driven by Playwright (which cannot download browsers here), and screenshots of
every open page when a test fails, kept under the git-ignored `test-artifacts/`."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from playwright.async_api import Browser, BrowserContext, Page, Playwright, ViewportSize, expect

from services.frontdoor.dev_accounts import DEV_PASSWORD
from tests.support.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
INSTALL = "apt-get install -y chromium"
BEHIND = ("hotline", "router", "relief", "notify")  # the services behind the front door
SCREEN: ViewportSize = {"width": 1366, "height": 768}  # the smallest screen the workspaces are made for


async def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise AssertionError(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium ({INSTALL}, "
            "which `make test` runs when it is root)"
        )
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


class Pages:
    """The test's browser contexts (one per person); `keep_screenshots` saves each of their pages."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: dict[str, BrowserContext] = {}

    async def person(self, who: str) -> Page:
        """A browser of its own for one person (own cookies), with one page."""
        context = await self.browser.new_context(base_url=self.base_url, locale="zh-CN", viewport=SCREEN)
        context.set_default_timeout(30_000)
        self.contexts[who] = context
        return await context.new_page()

    async def keep_screenshots(self, test_name: str) -> list[Path]:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        kept = []
        for who, context in self.contexts.items():
            for i, page in enumerate(context.pages):
                path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', test_name)}-{who}-{i}.png"
                try:
                    await page.screenshot(path=str(path), full_page=True)
                    kept.append(path)
                except Exception:  # noqa: BLE001 - a closed page has nothing to show
                    continue
        return kept

    async def close(self) -> None:
        for context in self.contexts.values():
            await context.close()


async def sign_in(page: Page, username: str, password: str = DEV_PASSWORD) -> None:
    """Sign in at the front door as a person does: the sign-in page, user name, password, the button."""
    await page.goto("/")
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(password)
    await page.locator("#submit").click()


async def until_listed(page: Page, reload_button: str, table: str, text: str, *, timeout: float = 120) -> None:
    """Press the page's own reload button until the row shows up (the case travels through Kafka)."""
    deadline = time.monotonic() + timeout
    while True:
        await page.locator(reload_button).click()
        try:
            await expect(page.locator(table)).to_contain_text(text, timeout=3_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def api_token(front_door_url: str, username: str, password: str = DEV_PASSWORD) -> dict[str, str]:
    """Headers for an API client signed in at the front door as `username`: for a test's steps that
    belong to another role than the page under test."""
    reply = httpx.post(f"{front_door_url}/auth/token", json={"username": username, "password": password}, timeout=10)
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}
