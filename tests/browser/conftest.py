"""The browser tests' stack: the four services and the front door as processes (one set for every browser
test), Debian's Chromium, and one browser context per person; a failing test keeps screenshots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.browser import BEHIND, Pages, launch
from tests.support.processes import ServiceSet


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):
    """Keep each phase's report on the test, so the `pages` fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceSet]:
    services = ServiceSet(
        kafka_bootstrap, mongodb_url, (*BEHIND, "frontdoor"), tmp_path_factory.mktemp("browser"), isolated_topics=True
    )
    door = services["frontdoor"]
    door.env.update({f"FRONTDOOR_{name.upper()}_URL": services[name].url for name in BEHIND})
    door.env["FRONTDOOR_ENVIRONMENT"] = "development"  # the development accounts, as `make run` has them
    with services:
        yield services


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()


@pytest.fixture
async def pages(request: pytest.FixtureRequest, stack: ServiceSet, browser: Browser) -> AsyncIterator[Pages]:
    people = Pages(browser, stack["frontdoor"].url)
    yield people
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        kept = await people.keep_screenshots(request.node.name)
        print("screenshots of the failing step:", *map(str, kept), sep="\n  ")
    await people.close()
