"""The relief officers' workspace in a real browser, behind the front door: a fire (T-FIRE) with a major
hardship (P5.2c) comes in through the hotline; the first officer sees the proposal appear on its own,
marked as an emergency, and signs 8,000 yuan (above the 5,000 four-eyes threshold, the stack's default);
their approve button is then disabled with the reason; a second officer sees the first one's name,
approves and records the payment; both see it paid with both names. A coordinator sees the subsidy runs'
form, which officers do not."""

from __future__ import annotations

import random
import re

import httpx
import pytest
from playwright.async_api import Page, Response, expect

from tests.support.browser import Pages, api_token, sign_in
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e

ARRIVES = 90_000  # ms: hotline -> Kafka -> router -> relief, on a shared machine
REFRESH = 20_000  # ms: the page's own refresh runs every 5 s


def fire_call(stack: ServiceSet) -> str:
    """The operator's call, through the hotline API: a house fire, the family needs major assistance."""
    body = {
        "caller": {"name": "赵六", "phone": f"139{random.randint(10_000_000, 99_999_999)}"},
        "place": {"district": "500103", "address": "解放碑民族路 8 号"},
        "needs": ["temp_assist_major"],
        "household_status": "none",
        "description": "家中厨房着火，房屋烧毁，一家三口无处居住",
        "attributes": {"hardship_kind": "fire", "estimated_need_yuan": 8000},
    }
    headers = api_token(stack["frontdoor"].url, "operator")
    reply = httpx.post(f"{stack['hotline'].url}/api/v1/help-requests", json=body, headers=headers, timeout=30)
    assert reply.status_code == 201, reply.text
    accepted = reply.json()
    assert accepted["emergency"] and any(r.startswith("T-FIRE") for r in accepted["emergency_reasons"])
    return str(accepted["case_id"])


def failed_requests(page: Page) -> list[str]:
    """Every 4xx/5xx the page meets from now on (a favicon 404, a 403 from a form shown to the wrong role)."""
    failed: list[str] = []

    def seen(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", seen)
    return failed


async def fits_the_screen(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_two_officers_sign_approve_and_pay_a_fire_grant_above_the_four_eyes_threshold(
    stack: ServiceSet, pages: Pages
):
    case_id = fire_call(stack)
    first = await pages.person("relief")
    first_failed = failed_requests(first)
    await sign_in(first, "relief")
    await expect(first).to_have_url(re.compile(r"/relief/$"))
    await expect(first.locator("#tokenBox")).to_be_hidden()  # behind the front door: no token asked for
    await expect(first.locator("#runForm")).to_be_hidden()  # coordinators' form: not for officers
    await expect(first.get_by_role("button", name="开启批次")).to_be_hidden()
    for label in ("状态", "案件号", "对象编号", "CSV 文件"):
        await expect(first.get_by_label(label, exact=True)).to_be_visible()

    # The proposal appears without pressing reload, first in the list, as an emergency because of the fire.
    row = first.locator("#rows tr[data-id]", has_text=case_id)
    await expect(row).to_be_visible(timeout=ARRIVES)
    await expect(row).to_contain_text("紧急案件")
    await expect(row).to_contain_text("火灾或燃气")
    await expect(row).to_contain_text("待审批")
    await expect(first.locator("#rows tr[data-id]").first).to_have_attribute("data-id", f"{case_id}:P5.2c")
    await fits_the_screen(first)

    # Keyboard only: the approve button, Enter opens the form with the amount focused, Enter signs.
    await row.get_by_role("button", name="审批", exact=True).focus()
    await first.keyboard.press("Enter")
    amount = first.get_by_label("金额（元）")
    await expect(amount).to_be_focused()
    await first.keyboard.type("8000.00")
    await first.keyboard.press("Tab")
    await expect(first.get_by_label("审批意见")).to_be_focused()
    await first.keyboard.type("火灾致房屋烧毁，拟救助 8000 元")
    await first.keyboard.press("Enter")
    confirmation = first.locator("#entMsg")
    await expect(confirmation).to_contain_text("已签署，待另一名经办人复核")
    await expect(first.locator("tr.formrow")).to_have_count(0)  # the form and its inputs are gone
    await expect(row).to_contain_text("待复核")
    await expect(row).to_contain_text("救助经办 张敏（渝中区）（relief）")
    second_approval = row.get_by_role("button", name="复核批准")
    await expect(second_approval).to_be_disabled()
    await expect(row).to_contain_text("需另一名经办人复核")
    await fits_the_screen(first)
    await first.locator("#lang").click()  # the same in English, the confirmation too
    await expect(row).to_contain_text("You signed it: needs a second officer")
    await expect(row).to_contain_text("Why: fire or gas (119)")
    await expect(confirmation).to_contain_text("Signed: a second officer must approve")
    await first.locator("#lang").click()
    await expect(confirmation).to_contain_text("已签署，待另一名经办人复核")

    second = await pages.person("relief2")
    second_failed = failed_requests(second)
    await sign_in(second, "relief2")
    await expect(second).to_have_url(re.compile(r"/relief/$"))
    row2 = second.locator("#rows tr[data-id]", has_text=case_id)
    await expect(row2).to_contain_text("救助经办 张敏", timeout=REFRESH)
    await row2.get_by_role("button", name="复核批准").click()
    await second.get_by_label("审批意见").fill("复核同意")
    await second.get_by_label("审批意见").press("Enter")
    await expect(second.locator("#entMsg")).to_contain_text("已批准")
    await expect(row2).to_contain_text("已批准")
    await expect(row2).to_contain_text("救助复核 陈静（渝中区）（relief2）")

    await row2.get_by_role("button", name="登记发放").click()
    reference = second.get_by_label("支付凭证号")
    await reference.fill("BANK-FIRE-0001")
    await reference.press("Enter")
    await expect(second.locator("#entMsg")).to_contain_text("已登记发放 8,000.00 元")
    await expect(row2).to_contain_text("已发放")
    for name in ("救助经办 张敏（渝中区）（relief）", "救助复核 陈静（渝中区）（relief2）"):
        await expect(row2).to_contain_text(name)
    await expect(row2).to_contain_text("发放登记：救助复核 陈静（渝中区）（relief2）")
    await fits_the_screen(second)

    # The first officer's list follows on its own; their confirmation is still there after the refreshes.
    await expect(row).to_contain_text("已发放", timeout=REFRESH)
    await expect(row).to_contain_text("救助复核 陈静（渝中区）（relief2）")
    await expect(confirmation).to_contain_text("已签署，待另一名经办人复核")

    for page in (first, second):
        assert "eyJ" not in await page.content()  # no token anywhere in the page
    assert first_failed == [] and second_failed == []  # no favicon 404, no refused request


async def test_a_coordinator_sees_the_subsidy_runs_form_and_not_the_officers_entitlements(pages: Pages):
    coordinator = await pages.person("coordinator")
    await sign_in(coordinator, "coordinator")
    await expect(coordinator).to_have_url(re.compile(r"/notify/$"))
    failed = failed_requests(coordinator)  # from the relief page on
    await coordinator.goto("/relief/")
    await expect(coordinator.locator("#runForm")).to_be_visible()
    await expect(coordinator.get_by_label("月份")).to_be_visible()
    await expect(coordinator.locator("#entSection")).to_be_hidden()
    await expect(coordinator.locator("#runs")).to_contain_text("暂无发放批次")
    await fits_the_screen(coordinator)
    assert failed == []


async def test_on_its_own_port_the_page_takes_a_pasted_token_as_a_password_and_its_role_decides(
    stack: ServiceSet, pages: Pages
):
    """Development only: without the front door the page asks for a token, never shows it, and shows an
    officer's token no subsidy-run form."""
    page = await pages.person("developer")
    await page.goto(stack["relief"].url + "/")
    box = page.get_by_label("登录凭证（开发用）")
    await expect(box).to_have_attribute("type", "password")
    token = api_token(stack["frontdoor"].url, "relief")["Authorization"].removeprefix("Bearer ")
    await box.fill(token)
    await box.press("Enter")
    await box.dispatch_event("change")
    await expect(page.locator("#who")).to_contain_text("救助经办人员")
    await expect(page.locator("#rows tr")).not_to_have_count(0)  # the list came (maybe empty: "暂无救助事项")
    await expect(page.locator("#entLoadMsg")).to_be_empty()  # the token was taken
    await expect(page.locator("#runForm")).to_be_hidden()
    await expect(page.locator("#runsReadOnly")).to_be_visible()
    assert token not in await page.locator("body").inner_text()
