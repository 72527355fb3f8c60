"""The working-day calendar on the coordinator's page, in a real browser behind the front door (P6.2):
the years it holds and, from October, the next year it still lacks; an administrator's schedule that does
not validate is refused naming the line and field, and nothing is added; a coordinator reads the
calendar but has no form to add a year."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from tests.support.browser import Pages, sign_in
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e


async def test_the_calendar_shows_its_years_and_the_missing_one_and_refuses_a_bad_schedule(
    pages: Pages, stack: ServiceSet
) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    admin = await pages.person("admin")
    await sign_in(admin, "admin")
    await expect(admin).to_have_url(re.compile(r"/accounts/$"))
    await admin.goto("/notify/")
    # A refresh keeps the tab buttons themselves (a click landing while the lists reload once went
    # nowhere: the buttons were rebuilt between the press and the release) and the keyboard focus.
    reports_tab = admin.get_by_role("tab", name="报表")
    await reports_tab.focus()
    held = await reports_tab.element_handle()
    await admin.evaluate("() => load()")
    assert await held.evaluate("(b) => b.isConnected && document.activeElement === b")
    await reports_tab.click()
    await expect(reports_tab).to_have_attribute("aria-selected", "true")
    year_2026 = admin.locator('#cal-years tr[data-year="2026"]')
    await expect(year_2026).to_contain_text("随系统发布")
    if today.month >= 10 or today.year > 2026:  # the packaged data holds 2026 only
        wanted = today.year + 1 if today.month >= 10 else today.year
        await expect(admin.locator("#cal-missing")).to_contain_text(f"{wanted}")
        await expect(admin.locator("#cal-missing")).to_contain_text("暂按周一至周五计算")

    # A schedule whose weekday is wrong: refused, the line and field named, the box marked, nothing added.
    await admin.get_by_label("年份", exact=True).fill("2099")
    await admin.get_by_label(re.compile("该年安排")).fill(
        "date,weekday,kind,name_zh,name_en\n2099-01-01,Mon,holiday,元旦,New Year\n"
    )
    await admin.get_by_role("button", name="录入该年安排").click()
    await expect(admin.locator("#cal-error")).to_contain_text("line 2: weekday")
    await expect(admin.locator("#cal-csv")).to_have_class(re.compile(r"\binvalid\b"))
    await expect(admin.locator('#cal-years tr[data-year="2099"]')).to_have_count(0)
    await admin.get_by_role("button", name="English").click()
    await expect(admin.get_by_role("button", name="Add the year")).to_be_visible()

    coordinator = await pages.person("coordinator")
    await sign_in(coordinator, "coordinator")
    await expect(coordinator).to_have_url(re.compile(r"/notify/$"))
    await coordinator.get_by_role("tab", name="报表").click()
    await expect(coordinator.locator('#cal-years tr[data-year="2026"]')).to_be_visible()
    await expect(coordinator.locator("#cal-add")).to_be_hidden()
